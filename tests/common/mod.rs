//! Helpers shared by the integration tests: real processes on free ports, waited on with
//! deadlines, killed on drop.
#![allow(dead_code)]

pub mod cases;
pub mod clients;
pub mod cluster;
pub mod differential;
pub mod memcached;
pub mod peer;
pub mod sessions;

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Runs `command` to completion with stdin closed and stdout and stderr collected. Past
/// `deadline` the process is killed and the test fails, naming it `what`.
pub fn output_within(command: &mut Command, deadline: Duration, what: &str) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("spawning {what}: {err}"));
    // Read both pipes while the process runs, so a chatty one never blocks on a full pipe.
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} ran past its deadline of {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Reads `pipe` to its end on a thread of its own.
fn read_all(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Debian's python3, which sees python3-pymemcache, or a failure naming the fix.
pub fn python_with_pymemcache() -> &'static str {
    let python = "/usr/bin/python3";
    let check = Command::new(python)
        .args(["-c", "import pymemcache"])
        .output()
        .unwrap_or_else(|err| {
            panic!("{python} is missing ({err}); run scripts/test.sh, which installs it")
        });
    assert!(
        check.status.success(),
        "pymemcache is missing for {python}: {}; run scripts/test.sh (apt-get install \
         python3-pymemcache)",
        String::from_utf8_lossy(&check.stderr)
    );
    python
}
