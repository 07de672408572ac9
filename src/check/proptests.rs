//! Property tests: histories produced by running a real item sequentially, with random
//! overlapping intervals and indeterminate operations, are always accepted; the same
//! histories with one read corrupted are always rejected.

use super::history::{History, Output};
use super::testkit::{simulate, Plan};
use super::{linearizable, sequential, Verdict};
use proptest::prelude::*;
use std::time::Duration;

const BUDGET: Duration = Duration::from_secs(20);

fn plan() -> impl Strategy<Value = Vec<Plan>> {
    prop::collection::vec(
        (any::<u8>(), any::<u8>(), 0u8..12, 0u8..12, 0u8..12).prop_map(
            |(kind, arg, before, after, fate)| Plan {
                kind,
                arg,
                before,
                after,
                fate,
            },
        ),
        0..40,
    )
}

/// The history with its first definite read made to return a value nobody wrote.
fn corrupted(history: &History) -> Option<History> {
    let mut history = history.clone();
    let read = history
        .operations
        .iter_mut()
        .find(|op| matches!(op.output, Output::Value { .. } | Output::Miss))?;
    read.output = Output::Value {
        data: b"never".to_vec(),
        cas: 5,
    };
    Some(history)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn simulated_histories_are_linearizable(plan in plan()) {
        let history = simulate("k", &plan, 10);
        let report = linearizable::check(&history, BUDGET);
        prop_assert!(report.is_ok(), "{}\n{:#?}", report, history);
    }

    #[test]
    fn simulated_histories_are_sequentially_consistent(plan in plan()) {
        let history = simulate("k", &plan, 10);
        let report = sequential::check(&history, BUDGET);
        prop_assert!(report.is_ok(), "{}\n{:#?}", report, history);
    }

    #[test]
    fn a_read_of_a_value_nobody_wrote_is_caught(plan in plan()) {
        let history = simulate("k", &plan, 10);
        if let Some(bad) = corrupted(&history) {
            let lin = linearizable::check(&bad, BUDGET);
            prop_assert!(matches!(lin.verdict, Verdict::Violation(_)), "{}", lin);
            let sc = sequential::check(&bad, BUDGET);
            prop_assert!(matches!(sc.verdict, Verdict::Violation(_)), "{}", sc);
        }
    }
}
