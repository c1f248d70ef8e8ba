//! The `pgoutput` logical replication decoder on any bytes a server (or a corrupted stream)
//! may send: a decode error, never a panic or an allocation the input does not pay for.
#![no_main]

use ferry_runner::plugins::postgres_cdc::replication::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    let _ = decode(payload);
});
