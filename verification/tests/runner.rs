//! The runner turns failures, panics and hangs into `not ok` outcomes and keeps going.

use std::time::Duration;

use verification::{Category, ServerContext, TestCase};

fn category() -> Category {
    Category {
        name: "Runner",
        base: 900_000,
        tests: vec![
            TestCase::new("Passes", |_| Box::pin(async { Ok(()) })),
            TestCase::new("Fails", |_| {
                Box::pin(async { Err("expected 1, got 2".into()) })
            }),
            TestCase::new("Panics", |_| Box::pin(async { panic!("boom") })),
            TestCase::new("Hangs", |_| Box::pin(std::future::pending()))
                .timeout(Duration::from_millis(200)),
            TestCase::new("RunsAfterTheOthers", |t| {
                Box::pin(async move {
                    let connector = t.shared(1, "runner_user").await?;
                    verification::ensure!(connector.is_authenticated(), "not authenticated");
                    Ok(())
                })
            }),
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_panics_and_timeouts_are_reported_and_the_run_goes_on() {
    let server = ServerContext::start().await.expect("servers start");
    let mut seen = Vec::new();
    let outcomes = verification::runner::run(&server, &[category()], |outcome| {
        seen.push(outcome.test);
    })
    .await;
    server.stop().await;
    assert_eq!(
        seen,
        ["Passes", "Fails", "Panics", "Hangs", "RunsAfterTheOthers"]
    );
    let results: Vec<_> = outcomes.iter().map(|o| o.result.clone()).collect();
    assert_eq!(results[0], Ok(()));
    assert_eq!(results[1], Err("expected 1, got 2".to_owned()));
    assert_eq!(results[2], Err("panicked: boom".to_owned()));
    assert_eq!(results[3], Err("timed out after 200ms".to_owned()));
    assert_eq!(results[4], Ok(()));
}
