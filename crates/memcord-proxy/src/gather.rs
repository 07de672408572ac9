//! Gathering concurrent work into one batch: what makes one syscall, one log entry or one
//! replication round serve many clients.

use tokio::sync::mpsc;

/// Moves everything queued on `rx` into `take` (which answers whether the batch has room for
/// more), then lets every other ready task run and does it again, so that work those tasks
/// queue in the same turn of the runtime (client handlers woken by the same poll of the I/O
/// driver) joins this batch instead of starting one of its own. Stops when the batch is full,
/// when a round brings nothing new, or after `rounds` rounds.
pub async fn gather<T>(rx: &mut mpsc::Receiver<T>, rounds: usize, mut take: impl FnMut(T) -> bool) {
    if !drain(rx, &mut take).1 {
        return;
    }
    for _ in 0..rounds {
        tokio::task::yield_now().await;
        let (moved, room) = drain(rx, &mut take);
        if moved == 0 || !room {
            return;
        }
    }
}

/// Moves what is queued now; returns how many items moved and whether there is room left.
fn drain<T>(rx: &mut mpsc::Receiver<T>, take: &mut impl FnMut(T) -> bool) -> (usize, bool) {
    let mut moved = 0;
    while let Ok(item) = rx.try_recv() {
        moved += 1;
        if !take(item) {
            return (moved, false);
        }
    }
    (moved, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn work_queued_by_tasks_that_run_meanwhile_joins_the_batch() {
        let (tx, mut rx) = mpsc::channel(64);
        tx.send(0).await.unwrap();
        for i in 1..=3 {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(i).await.unwrap() });
        }
        let mut batch = Vec::new();
        gather(&mut rx, 4, |item| {
            batch.push(item);
            true
        })
        .await;
        assert_eq!(batch, vec![0, 1, 2, 3]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_batch_stops_taking() {
        let (tx, mut rx) = mpsc::channel(64);
        for i in 0..10 {
            tx.send(i).await.unwrap();
        }
        let mut batch = Vec::new();
        gather(&mut rx, 4, |item| {
            batch.push(item);
            batch.len() < 4
        })
        .await;
        assert_eq!(batch, vec![0, 1, 2, 3]);
        assert_eq!(rx.try_recv(), Ok(4), "the rest stays queued, in order");
    }
}
