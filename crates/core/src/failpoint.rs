//! Test-only fault injection, compiled into debug builds only: the tests SIGKILL a run at an
//! exact point of a phase (where no hook runs) to check what a crash there leaves. Release
//! builds ignore `KOPI_DOCKA_FAILPOINT`.

/// The variable naming the failpoint: `<name>:<key>`.
#[cfg(debug_assertions)]
const ENV: &str = "KOPI_DOCKA_FAILPOINT";

/// When `KOPI_DOCKA_FAILPOINT` is `<name>:<key>`, logs `failpoint: holding at <name>` and
/// never returns (the test kills the process there).
#[cfg(debug_assertions)]
pub(crate) async fn hold(name: &str, key: &str) {
    let wanted = std::env::var_os(ENV).is_some_and(|v| {
        v.to_string_lossy()
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            == Some(key)
    });
    if wanted {
        tracing::warn!(key, "failpoint: holding at {name}");
        std::future::pending::<()>().await;
    }
}

/// Release builds have no failpoints.
#[cfg(not(debug_assertions))]
pub(crate) async fn hold(_name: &str, _key: &str) {}
