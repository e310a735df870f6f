//! What a drill started from the dashboard reports: the child (`restore --drill --json`)
//! records its verdict itself ([`kopi_docka_core::restore::drill_log`]); its errors are on
//! stdout, and they go into the job's live lines too.

/// What failed, from the drill's `--json` report on stdout and its exit code; without a
/// report (the drill stopped before it had one) the last lines of its log say why.
pub fn errors(stdout: &str, succeeded: bool, stderr_tail: &[String]) -> Vec<String> {
    let report: Option<serde_json::Value> = serde_json::from_str(stdout.trim()).ok();
    let passed = report
        .as_ref()
        .and_then(|r| r["passed"].as_bool())
        .unwrap_or(false)
        && succeeded;
    let mut errors: Vec<String> = report
        .as_ref()
        .and_then(|r| r["errors"].as_array())
        .map(|list| {
            list.iter()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !passed && errors.is_empty() {
        errors.extend(stderr_tail.iter().rev().take(3).rev().cloned());
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_says_what_failed_and_a_missing_one_the_log_does() {
        assert!(errors(r#"{"passed":true,"backup_id":"b1","errors":[]}"#, true, &[]).is_empty());
        assert_eq!(
            errors(
                r#"{"passed":false,"errors":["volume differs"]}"#,
                false,
                &[]
            ),
            ["volume differs"]
        );
        let tail = [
            "a".to_owned(),
            "b".into(),
            "c".into(),
            "error: no restore point".into(),
        ];
        assert_eq!(
            errors("", false, &tail),
            ["b", "c", "error: no restore point"]
        );
    }
}
