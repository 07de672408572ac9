//! Three eventual-mode peers in one process (one tokio runtime), on free loopback ports: the
//! same wiring as `memcord peer`, without processes, so a failure shows in one backtrace.

mod common;

use common::cluster::{free_port, get, wait_for};
use common::peer::RawClient;
use memcord_proxy::config::{load, Overrides};
use memcord_proxy::server::peer::BoundPeer;
use std::net::SocketAddr;
use std::time::Duration;

#[test]
fn three_in_process_peers_replicate_writes_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let mut ini = String::from(
        "[cluster]\nconsistency = eventual\nsecret = in-process\nheartbeat_ms = 50\n\
         failure_timeout_ms = 400\nsync_interval_ms = 200\n",
    );
    let mut clients: Vec<SocketAddr> = Vec::new();
    for id in 0..3 {
        let client: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        ini += &format!(
            "[peer.{id}]\nclient_addr = {client}\npeer_addr = 127.0.0.1:{}\n",
            free_port()
        );
        clients.push(client);
    }
    let path = dir.path().join("config.ini");
    std::fs::write(&path, ini).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut servers = Vec::new();
    for id in 0..3u16 {
        let overrides = Overrides {
            config: Some(path.clone()),
            id: Some(id),
            ..Overrides::default()
        };
        let config = load(&overrides, std::iter::empty()).expect("config");
        let peer = runtime.block_on(BoundPeer::bind(config)).expect("bind");
        let mut stop = stop_tx.subscribe();
        servers.push(runtime.spawn(peer.serve(async move {
            let _ = stop.recv().await;
        })));
    }
    // Every peer serves once it has found the others.
    for addr in &clients {
        let serving = wait_for(Duration::from_secs(20), || {
            RawClient::connect(*addr)
                .stats("cluster")
                .iter()
                .any(|(k, v)| k == "cluster_state" && v == "serving")
        });
        assert!(serving.is_some(), "peer at {addr} never served");
    }

    let mut writer = RawClient::connect(clients[0]);
    writer.roundtrip(b"set shared 5 0 3\r\nabc\r\n", b"STORED\r\n");
    writer.roundtrip(b"set doomed 0 0 1\r\nx\r\n", b"STORED\r\n");
    for addr in &clients[1..] {
        let mut reader = RawClient::connect(*addr);
        let seen = wait_for(Duration::from_secs(3), || {
            get(&mut reader, "shared").as_deref() == Some(&b"abc"[..])
                && get(&mut reader, "doomed").is_some()
        });
        assert!(seen.is_some(), "write not replicated to {addr}");
        // Flags travel with the item.
        reader.roundtrip(b"get shared\r\n", b"VALUE shared 5 3\r\nabc\r\nEND\r\n");
    }
    RawClient::connect(clients[2]).roundtrip(b"delete doomed\r\n", b"DELETED\r\n");
    for addr in &clients {
        let mut reader = RawClient::connect(*addr);
        let gone = wait_for(Duration::from_secs(3), || {
            get(&mut reader, "doomed").is_none()
        });
        assert!(gone.is_some(), "delete not replicated to {addr}");
    }

    let _ = stop_tx.send(());
    runtime.block_on(async {
        for server in servers {
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("peer stops")
                .unwrap()
                .expect("peer served");
        }
    });
}
