//! The software of the simulated server hosts: the real Play and API servers, restartable.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use playhouse::{ApiServer, PlayServer};

use super::env::{Env, Server, Workload, expect_no_tasks};
use super::ports::CLIENT_PORT;
use crate::app::{Boot, STAGE_TYPE, SimPlayer, SimRoom, api_handlers};
use crate::lifecycle::StageBook;
use crate::net::SimListener;
use crate::trace::now;

type Software = Pin<Box<dyn Future<Output = turmoil::Result>>>;

/// A Play server's shutdown timeout: its graceful stop aborts stages still running then.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// The software of Play server host `name`: serve clients, join the mesh, run until the
/// cluster stops, stop gracefully (checking that it closed every stage: see
/// [`crate::lifecycle`]), check for leaked tasks. Restartable (bounce).
pub fn play_host(env: &Env, name: &'static str) -> impl Fn() -> Software + use<> {
    let env = env.clone();
    move || {
        let env = env.clone();
        Box::pin(async move {
            let boot_number = env.next_boot(name);
            let boot = Boot::new(name, boot_number);
            let book = StageBook::new(&env.trace, name);
            let timing = env.timing;
            let builder = PlayServer::builder().server_id(name);
            let builder = crate::relay_room::register(builder, name, boot_number, &book);
            let builder = crate::clock_room::register(builder, &book);
            let builder = crate::move_room::register(builder);
            let (stages, actors) = (book.clone(), book.clone());
            let server = builder
                .stage(
                    STAGE_TYPE,
                    move |init| SimRoom::new(init, &boot, &stages),
                    move |_| SimPlayer::new(&actors),
                )
                .default_stage_type(STAGE_TYPE)
                .configure(|c| {
                    c.idle_timeout = timing.idle_timeout;
                    c.auth_timeout = timing.auth_timeout;
                    c.shutdown_timeout = SHUTDOWN_TIMEOUT;
                    let mut resume = playhouse::ResumeConfig::default();
                    resume.window = timing.resume_window;
                    c.resume = Some(resume);
                })
                .build()?;
            server.serve(SimListener::bind(CLIENT_PORT).await?)?;
            let link = env.link(name).await?;
            server.join_mesh(env.join(link)).await?;
            env.trace.record(name, "up");
            env.register(name, Server::Play(server.clone()));
            if let Some(within) = env.wait_stop_or_drain(name).await {
                // Drained: the server stops by itself; the host's software ends (a bounce
                // restarts it).
                let began = now();
                let report = server.drain(within).await;
                let took = now() - began;
                env.trace
                    .record(name, format_args!("drained in {took:?}: {report:?}"));
                drop(server);
                expect_no_tasks(&env, name, Duration::from_secs(3)).await;
                env.drained(name, report, took);
                return Ok(());
            }
            book.stop_began();
            let deadline = now() + SHUTDOWN_TIMEOUT;
            server.stop().await;
            book.check_stop(deadline);
            drop(server);
            expect_no_tasks(&env, name, Duration::from_secs(3)).await;
            env.trace.record(name, "stopped");
            env.stopped(name);
            Ok(())
        })
    }
}

/// The software of API server host `name` (in service `service_id`, default 2): join the
/// mesh, run `workload` (if any) with the server, run until the cluster stops, stop, check
/// for leaked tasks.
pub fn api_host(
    env: &Env,
    name: &'static str,
    service_id: Option<u16>,
    workload: Option<Workload>,
) -> impl Fn() -> Software + use<> {
    let env = env.clone();
    move || {
        let env = env.clone();
        let workload = workload.clone();
        Box::pin(async move {
            let link = env.link(name).await?;
            let mut join = env.join(link);
            if let Some(service_id) = service_id {
                join = join.service_id(service_id);
            }
            let server = ApiServer::builder()
                .server_id(name)
                .handlers(api_handlers(name))
                .handlers(crate::relay_room::api_handlers(name))
                .start(join)
                .await?;
            env.trace.record(name, "up");
            env.register(name, Server::Api(server.clone()));
            if let Some(workload) = workload {
                workload(server.clone(), env.clone()).await;
                env.finish(name);
            }
            env.wait_stop().await;
            server.stop().await;
            drop(server);
            expect_no_tasks(&env, name, Duration::from_secs(3)).await;
            env.trace.record(name, "stopped");
            env.stopped(name);
            Ok(())
        })
    }
}
