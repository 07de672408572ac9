//! The run's summary: one `name: value` line per figure (easy to read and to parse), printed
//! on stdout and written to `summary.txt` with `--out`.

use super::history::{History, Output};
use super::nemesis::FaultKind;
use super::verify::{Judgement, Verification};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Everything the summary reports.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The mode checked.
    pub mode: String,
    /// The seed.
    pub seed: u64,
    /// Where the cluster came from (`started …` or `attached …`).
    pub cluster: String,
    /// Clients.
    pub clients: usize,
    /// How long the workload ran.
    pub workload: Duration,
    /// Operations in the history.
    pub operations: usize,
    /// Operations with a definite reply.
    pub ok: usize,
    /// Indeterminate operations answered with an error reply.
    pub error_replies: usize,
    /// Indeterminate operations that timed out or lost their connection.
    pub lost: usize,
    /// Faults injected per kind.
    pub faults: BTreeMap<FaultKind, usize>,
    /// Whether every peer served again after the faults were healed.
    pub recovered: Result<(), String>,
    /// The checker's verdict.
    pub verification: Verification,
}

impl Summary {
    /// Counts the history's outcomes.
    pub fn count(history: &History) -> (usize, usize, usize) {
        let (mut ok, mut errors, mut lost) = (0, 0, 0);
        for op in &history.operations {
            match &op.output {
                Output::Indeterminate(text) if is_error_reply(text) => errors += 1,
                Output::Indeterminate(_) => lost += 1,
                _ => ok += 1,
            }
        }
        (ok, errors, lost)
    }

    /// The verdict word: `consistent`, `violation` or `unknown`.
    pub fn verdict(&self) -> &'static str {
        match self.verification.judgement {
            Judgement::Consistent => "consistent",
            Judgement::Violation { .. } => "violation",
            Judgement::Unknown(_) => "unknown",
        }
    }

    /// The process exit code: 0 consistent, 1 violation, 2 unknown.
    pub fn exit_code(&self) -> u8 {
        match self.verification.judgement {
            Judgement::Consistent => super::EXIT_CONSISTENT,
            Judgement::Violation { .. } => super::EXIT_VIOLATION,
            Judgement::Unknown(_) => super::EXIT_UNKNOWN,
        }
    }

    /// The summary text.
    pub fn render(&self) -> String {
        let mut out = String::from("memcord check summary\n");
        let mut line = |name: &str, value: String| {
            let _ = writeln!(out, "{name}: {value}");
        };
        line("mode", self.mode.clone());
        line("seed", self.seed.to_string());
        line("cluster", self.cluster.clone());
        line("clients", self.clients.to_string());
        line(
            "workload_secs",
            format!("{:.1}", self.workload.as_secs_f64()),
        );
        line("operations", self.operations.to_string());
        line("ok", self.ok.to_string());
        line(
            "indeterminate",
            (self.error_replies + self.lost).to_string(),
        );
        line(
            "indeterminate_error_replies",
            self.error_replies.to_string(),
        );
        line("indeterminate_timeouts", self.lost.to_string());
        let faults: Vec<String> = FaultKind::ALL
            .iter()
            .map(|k| format!("{}={}", k.name(), self.faults.get(k).copied().unwrap_or(0)))
            .collect();
        line("faults", faults.join(" "));
        line(
            "recovered",
            match &self.recovered {
                Ok(()) => "yes".into(),
                Err(why) => format!("no ({why})"),
            },
        );
        let v = &self.verification;
        line("checker", v.checker.to_string());
        line("checker_ms", v.elapsed.as_millis().to_string());
        line("keys_checked", v.keys_checked.to_string());
        line("verdict", self.verdict().to_string());
        match &v.judgement {
            Judgement::Consistent => {}
            Judgement::Violation {
                key,
                explanation,
                timeline,
            } => {
                line("violation_key", key.clone());
                if let Some(path) = timeline {
                    line("timeline", path.display().to_string());
                }
                let _ = writeln!(out, "explanation:\n{}", explanation.trim_end());
            }
            Judgement::Unknown(why) => line("reason", why.clone()),
        }
        out
    }
}

/// Whether an indeterminate output's text is a server's error reply (rather than a timeout or
/// a broken connection).
pub fn is_error_reply(text: &str) -> bool {
    text.starts_with("SERVER_ERROR")
        || text.starts_with("CLIENT_ERROR")
        || text == "ERROR"
        || text.starts_with("unexpected reply")
}
