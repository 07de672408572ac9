//! Property tests: histories produced by running a real item sequentially, with random
//! overlapping intervals and indeterminate operations, are always accepted; the same
//! histories with one read corrupted are always rejected.

use super::history::{History, Input, Operation, Output};
use super::testkit::{simulate, Plan};
use super::{convergence, linearizable, sequential, timeline, Verdict};
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

fn any_input() -> impl Strategy<Value = Input> {
    let bytes = || prop::collection::vec(prop_oneof![Just(b'1'), Just(b'a'), any::<u8>()], 0..3);
    prop_oneof![
        Just(Input::Get),
        bytes().prop_map(Input::Set),
        bytes().prop_map(Input::Add),
        bytes().prop_map(Input::Replace),
        bytes().prop_map(Input::Append),
        bytes().prop_map(Input::Prepend),
        (bytes(), 0u64..4).prop_map(|(value, unique)| Input::Cas { value, unique }),
        any::<u64>().prop_map(Input::Incr),
        any::<u64>().prop_map(Input::Decr),
        Just(Input::Delete),
    ]
}

fn any_output() -> impl Strategy<Value = Output> {
    let bytes = || prop::collection::vec(prop_oneof![Just(b'1'), Just(b'a'), any::<u8>()], 0..3);
    prop_oneof![
        Just(Output::Stored),
        Just(Output::NotStored),
        Just(Output::Exists),
        Just(Output::NotFound),
        Just(Output::Deleted),
        (bytes(), 0u64..4).prop_map(|(data, cas)| Output::Value { data, cas }),
        Just(Output::Miss),
        (0u64..4).prop_map(Output::Number),
        Just(Output::Indeterminate("lost".into())),
    ]
}

/// Arbitrary, mostly nonsensical histories: odd times (returns before invocations, the
/// largest times), repeated ids, any reply to any request.
fn any_history() -> impl Strategy<Value = History> {
    let time = || prop_oneof![0u64..50, Just(u64::MAX), Just(u64::MAX - 1)];
    prop::collection::vec(
        (
            0usize..8,
            0usize..4,
            0usize..3,
            any_input(),
            any_output(),
            time(),
            time(),
        ),
        0..14,
    )
    .prop_map(|ops| History {
        operations: ops
            .into_iter()
            .map(
                |(id, client, key, input, output, invoked_ns, returned_ns)| Operation {
                    id,
                    client,
                    peer: client,
                    key: format!("k{key}"),
                    input,
                    output,
                    invoked_ns,
                    returned_ns,
                },
            )
            .collect(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_input_makes_a_checker_panic(history in any_history(), finals in prop::collection::vec(
        prop::collection::btree_map(
            (0usize..3).prop_map(|k| format!("k{k}")),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..3)),
            0..3,
        ),
        0..3,
    )) {
        let budget = Duration::from_millis(200);
        for report in [
            linearizable::check(&history, budget),
            sequential::check(&history, budget),
            convergence::check(&history, &finals),
        ] {
            let _ = report.to_string();
            if let Some(v) = report.violation() {
                let _ = timeline::render(v);
            }
        }
    }
}
