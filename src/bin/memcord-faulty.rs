//! `memcord-faulty`: the `memcord` binary with the test-only fault switches armed, built only
//! with `--features fault-injection` (memcord-proxy's `faults`). It reads
//! `MEMCORD_UNSAFE_LOCAL_READS` at start, which `memcord` never does, so `memcord check
//! --unsafe-local-reads` run from this binary starts peers that are broken on purpose.

#[path = "../main.rs"]
mod memcord;

fn main() -> std::process::ExitCode {
    memcord_proxy::faults::arm_from_env();
    memcord::main()
}
