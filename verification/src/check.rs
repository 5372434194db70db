//! Small assertions for verifiers: each returns `Err(message)` instead of panicking, so a
//! failed check becomes a clear `not ok` line.

/// The outcome of one test: `Err` carries the reason printed under `not ok`.
pub type TestResult = Result<(), String>;

/// Fails the test with a formatted message unless `cond` holds.
///
/// ```
/// fn check(n: u32) -> verification::TestResult {
///     verification::ensure!(n > 2, "expected more than 2, got {n}");
///     Ok(())
/// }
/// assert!(check(3).is_ok());
/// assert_eq!(check(1).unwrap_err(), "expected more than 2, got 1");
/// ```
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Fails the test unless `actual == expected`, naming what was compared.
///
/// ```
/// fn check(content: &str) -> verification::TestResult {
///     verification::ensure_eq!(content, "hello", "echo content");
///     Ok(())
/// }
/// assert_eq!(check("bye").unwrap_err(), r#"echo content: expected "hello", got "bye""#);
/// ```
#[macro_export]
macro_rules! ensure_eq {
    ($actual:expr, $expected:expr, $($what:tt)+) => {
        match (&$actual, &$expected) {
            (actual, expected) => {
                if actual != expected {
                    return Err(format!(
                        "{}: expected {:?}, got {:?}",
                        format!($($what)+),
                        expected,
                        actual
                    ));
                }
            }
        }
    };
}
