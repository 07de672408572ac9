use super::*;
use crate::history::{Input, Output};
use crate::linearizable;
use crate::testkit::*;

const BUDGET: Duration = Duration::from_secs(10);

#[test]
fn empty_history_is_ok() {
    assert!(check(&History::default(), BUDGET).is_ok());
}

#[test]
fn sequential_but_not_linearizable_is_accepted() {
    // Client 1 reads long after client 0's write was acknowledged, and misses it.
    let history = Builder::new()
        .op(0, set("a"), Output::Stored, 0, 1)
        .op(1, Input::Get, Output::Miss, 5, 6)
        .op(1, Input::Get, val("a", 3), 7, 8)
        .history();
    let sc = check(&history, BUDGET);
    assert!(sc.is_ok(), "{sc}");
    assert!(linearizable::check(&history, BUDGET).is_violation());
}

#[test]
fn a_client_must_see_its_own_writes() {
    let report = check(
        &Builder::new()
            .op(0, set("a"), Output::Stored, 0, 1)
            .op(0, set("b"), Output::Stored, 2, 3)
            .op(0, Input::Get, val("a", 1), 4, 5)
            .history(),
        BUDGET,
    );
    let v = report.violation().expect("violation");
    assert_eq!(v.stuck(), vec![2]);
}

#[test]
fn reads_may_not_go_back_in_time() {
    let report = check(
        &Builder::new()
            .op(0, set("a"), Output::Stored, 0, 1)
            .op(0, set("b"), Output::Stored, 2, 3)
            .op(1, Input::Get, val("b", 2), 4, 5)
            .op(1, Input::Get, val("a", 1), 6, 7)
            .history(),
        BUDGET,
    );
    assert!(report.is_violation(), "{report}");
}

#[test]
fn duplicate_counter_values_are_a_violation() {
    let mut b = Builder::new().op(0, set("0"), Output::Stored, 0, 1);
    for c in 1..4 {
        b = b.op(c, Input::Incr(1), Output::Number(c.min(2) as u64), 10, 20);
    }
    assert!(check(&b.history(), BUDGET).is_violation());
}

#[test]
fn the_global_check_catches_what_keys_alone_miss() {
    // Dekker: each client writes one key then misses the other's write. Each key alone is
    // fine (the read goes first); together no order works.
    let history = Builder::new()
        .on("x", 0, set("1"), Output::Stored, 0, 1)
        .on("y", 0, Input::Get, Output::Miss, 2, 3)
        .on("y", 1, set("1"), Output::Stored, 0, 1)
        .on("x", 1, Input::Get, Output::Miss, 2, 3)
        .history();
    let report = check(&history, BUDGET);
    let v = report.violation().expect("global violation");
    assert_eq!(v.key, "*");
    assert_eq!(v.operations.len(), 4);
}

#[test]
fn an_indeterminate_operation_ends_a_session() {
    // The indeterminate write may land after the client's later read, or never.
    let history = Builder::new()
        .op(0, set("a"), Output::Stored, 0, 1)
        .op(0, set("b"), ind(), 2, 0)
        .op(0, Input::Get, val("a", 1), 5, 6)
        .op(1, Input::Get, val("b", 2), 7, 8)
        .history();
    let report = check(&history, BUDGET);
    assert!(report.is_ok(), "{report}");
}

#[test]
fn pathological_history_gives_up_within_budget() {
    let history = unprovable_read_history();
    let budget = Duration::from_millis(300);
    let report = check(&history, budget);
    assert!(matches!(report.verdict, Verdict::Unknown(_)), "{report}");
    assert!(
        report.elapsed < budget + Duration::from_millis(700),
        "{report}"
    );
}
