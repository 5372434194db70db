//! Runs categories of tests one test at a time, each in its own task with its own timeout, so a
//! failing, panicking or hanging test never stops the run.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::check::TestResult;
use crate::context::{ServerContext, TestCtx};

/// Default per-test timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// A test body: gets its category's [`TestCtx`], returns `Err(reason)` on failure.
pub type TestFn = fn(TestCtx) -> BoxFuture<'static, TestResult>;

/// One named test.
#[derive(Clone, Debug)]
pub struct TestCase {
    /// Shown in TAP as `Category: name`.
    pub name: &'static str,
    /// Longest the test may run before it counts as failed.
    pub timeout: Duration,
    /// The test body.
    pub run: TestFn,
}

impl TestCase {
    /// A test with the default timeout.
    pub fn new(name: &'static str, run: TestFn) -> TestCase {
        TestCase {
            name,
            timeout: DEFAULT_TIMEOUT,
            run,
        }
    }

    /// The same test with another timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> TestCase {
        self.timeout = timeout;
        self
    }
}

/// A named group of tests with its own range of stage ids.
#[derive(Clone, Debug)]
pub struct Category {
    /// The category name (`--category` matches it case-insensitively).
    pub name: &'static str,
    /// First stage id of the category's range; tests add small offsets.
    pub base: i64,
    /// The tests, run in this order.
    pub tests: Vec<TestCase>,
}

/// The result of one test.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The test's category.
    pub category: &'static str,
    /// The test's name.
    pub test: &'static str,
    /// `Err(reason)` when it failed.
    pub result: TestResult,
    /// How long it took.
    pub duration: Duration,
}

/// Runs `categories` in order; `report` sees each outcome as soon as it is known.
pub async fn run(
    server: &Arc<ServerContext>,
    categories: &[Category],
    mut report: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for category in categories {
        let ctx = server.for_category(category.base);
        for test in &category.tests {
            let outcome = run_one(category.name, test, ctx.clone()).await;
            report(&outcome);
            outcomes.push(outcome);
        }
    }
    outcomes
}

/// Runs one test in its own task: a panic is caught as a failure, a timeout aborts it.
async fn run_one(category: &'static str, test: &TestCase, ctx: TestCtx) -> Outcome {
    let started = Instant::now();
    let task = tokio::spawn((test.run)(ctx));
    let abort = task.abort_handle();
    let result = match tokio::time::timeout(test.timeout, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(error)) if error.is_panic() => {
            Err(format!("panicked: {}", panic_message(error.into_panic())))
        }
        Ok(Err(error)) => Err(format!("test task failed: {error}")),
        Err(_) => {
            abort.abort();
            Err(format!("timed out after {:?}", test.timeout))
        }
    };
    if let Err(reason) = &result {
        tracing::warn!(category, test = test.name, %reason, "test failed");
    }
    Outcome {
        category,
        test: test.name,
        result,
        duration: started.elapsed(),
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}
