//! Disk full under the file sink, for real: the sink writes into a tmpfs too small for the
//! topic, so a batch fails part-way with ENOSPC; the sink retries (errors.retry) while the
//! test grows the filesystem. Every record must be in the file exactly once: a failed batch
//! is cut back to where it started, so its retry does not write its first lines twice, and
//! no torn line stays behind. Needs root (mount), as the stack does.

mod runner_support;

use std::path::Path;
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use ferry_e2e::harness::Stack;
use runner_support::*;

/// A tmpfs of `size` mounted on `dir`, unmounted on drop.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(dir: &'a Path, size: &str) -> Self {
        let status = StdCommand::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "ferry-disk-full",
            ])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount a tmpfs on {} (needs root)",
            dir.display()
        );
        Tmpfs(dir)
    }

    fn resize(&self, size: &str) {
        let status = StdCommand::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.0)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "remount {} with size {size}",
            self.0.display()
        );
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = StdCommand::new("umount").arg("-l").arg(self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_and_repeats_nothing_in_the_file_sink() {
    const RECORDS: usize = 4000;
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).expect("mount point");
    // 64 KiB hold about 500 of the 4000 lines of about 130 bytes.
    let tmpfs = Tmpfs::mount(&disk, "64k");
    let topic = unique("disk-full");
    create_topic(&stack.kafka_bootstrap, &topic, 1).await;
    let p = producer(&stack.kafka_bootstrap);
    let pad = "x".repeat(100);
    for i in 0..RECORDS {
        produce(
            &p,
            &topic,
            None,
            Some(format!("record-{i:05}-{pad}").as_bytes()),
            &[],
        )
        .await;
    }
    let out = disk.join("out.txt");
    let file = dir.path().join("sink.yaml");
    std::fs::write(
        &file,
        file_sink_yaml(
            &unique("disk-full"),
            &stack.kafka_bootstrap,
            &topic,
            &out,
            "  converters: {value: {string: {}}}\n  errors: {retryTimeoutSeconds: 300, retryMaxDelaySeconds: 1}\n",
        ),
    )
    .expect("write");
    let admin = free_admin_addr();
    let mut runner = spawn_runner(&stack, &file, &admin, &[]);

    // Wait until the sink has hit the full disk and is retrying.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = runner.child.try_wait().expect("wait") {
            panic!("the runner stopped ({status}):\n{}", runner.log_tail());
        }
        let log = std::fs::read_to_string(&runner.log).unwrap_or_default();
        if log.contains("No space left on device") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sink never hit the full disk:\n{}",
            runner.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    tmpfs.resize("16m");

    let deadline = Instant::now() + Duration::from_secs(90);
    while lines(&out).len() < RECORDS && Instant::now() < deadline {
        if let Some(status) = runner.child.try_wait().expect("wait") {
            panic!("the runner stopped ({status}):\n{}", runner.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let written = lines(&out);
    let expected: Vec<String> = (0..RECORDS)
        .map(|i| format!("record-{i:05}-{pad}"))
        .collect();
    if written != expected {
        let mut seen = std::collections::BTreeMap::<&str, usize>::new();
        for l in &written {
            *seen.entry(l.as_str()).or_default() += 1;
        }
        let twice = seen.values().filter(|n| **n > 1).count();
        let missing = expected
            .iter()
            .filter(|l| !seen.contains_key(l.as_str()))
            .count();
        panic!(
            "{} lines written for {RECORDS} records: {twice} lines twice or more, {missing} missing, {} not a record",
            written.len(),
            written.iter().filter(|l| !expected.contains(l)).count()
        );
    }
    terminate(&runner.child);
    let status = runner.child.wait().await.expect("exit");
    assert!(status.success(), "graceful stop: {status}");
    let log = std::fs::read_to_string(&runner.log).unwrap_or_default();
    assert!(
        log.contains("the batch was removed and is written again"),
        "the failed batch was cut back:\n{}",
        runner.log_tail()
    );
}
