//! The task configuration loader (`ferry-runner validate -f` and every task's start) on any
//! text: the API server's checks, then the runner's. Errors name fields; nothing panics.
#![no_main]

use ferry_runner::plugins::TaskShare;
use ferry_runner::task_config::{load, CheckMode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &str)| {
    let (count, yaml) = input;
    let share = TaskShare {
        index: 0,
        count: u32::from(count),
    };
    let _ = load(yaml, share, &Default::default(), CheckMode::Offline);
});
