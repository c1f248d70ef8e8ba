//! The `file` source: one record per line of a file, like Kafka Connect's FileStreamSource,
//! with the byte position after each line as its source offset. After a restart the task
//! resumes at the last position Kafka acknowledged, so no line is lost and only lines sent
//! after that position can be sent twice (at-least-once).
//!
//! Source partition `{"path": <path>}`, offset `{"position": <bytes>, "device": <id>,
//! "inode": <id>}`: the position and which file it is a position in. A file replaced under
//! the path (log rotation, a new file moved over it: another inode) is read from its start,
//! and so is one truncated below the position; an offset without `inode` (Kafka Connect's,
//! or one written by hand into `spec.offsets`) is taken as a position in whatever file is
//! there. Only complete lines (ending in a line break) are read; a line still being written
//! is read once it is complete.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use ferry_crds::plugins::FileSource;

use super::{PluginError, SourceOffset, SourcePartition, SourcePoll, SourceRecord, SourceTask};
use crate::config_error::ConfigError;

/// Default lines per batch (Kafka Connect's `batch.size`).
pub const DEFAULT_BATCH_SIZE: u32 = 2000;
const DEFAULT_POLL_INTERVAL_MS: u64 = 1000;
const POSITION: &str = "position";
const DEVICE: &str = "device";
const INODE: &str = "inode";

/// Which file a position is in: its device and inode.
type FileIdentity = (u64, u64);

fn identity_of(metadata: &std::fs::Metadata) -> FileIdentity {
    use std::os::unix::fs::MetadataExt;
    (metadata.dev(), metadata.ino())
}

/// Checks a `file` source block.
pub fn validate(spec: &FileSource) -> Vec<ConfigError> {
    let mut out: Vec<ConfigError> = super::check_absolute_path(&spec.path, "spec.source.file.path")
        .into_iter()
        .collect();
    if spec.topic.trim().is_empty() {
        out.push(ConfigError {
            field: "spec.source.file.topic".into(),
            message: "must name the topic the lines are written to".into(),
        });
    }
    if spec.batch_size == Some(0) {
        out.push(ConfigError {
            field: "spec.source.file.batchSize".into(),
            message: "must be at least 1".into(),
        });
    }
    if spec.partition.is_some_and(|p| p < 0) {
        out.push(ConfigError {
            field: "spec.source.file.partition".into(),
            message: "must not be negative".into(),
        });
    }
    if spec.poll_interval_ms == Some(0) {
        out.push(ConfigError {
            field: "spec.source.file.pollIntervalMs".into(),
            message: "must be at least 1".into(),
        });
    }
    out
}

/// The `file` source.
#[derive(Debug)]
pub struct FileSourceTask {
    path: PathBuf,
    topic: String,
    partition: Option<i32>,
    batch_size: usize,
    poll_interval: Duration,
    position: u64,
    /// The file `position` is in, once known.
    identity: Option<FileIdentity>,
    reader: Option<BufReader<std::fs::File>>,
    waiting_logged: bool,
}

impl FileSourceTask {
    /// A task reading `spec.path`.
    pub fn new(spec: &FileSource) -> Self {
        Self {
            path: PathBuf::from(&spec.path),
            topic: spec.topic.clone(),
            partition: spec.partition,
            batch_size: spec.batch_size.unwrap_or(DEFAULT_BATCH_SIZE).max(1) as usize,
            poll_interval: Duration::from_millis(
                spec.poll_interval_ms
                    .unwrap_or(DEFAULT_POLL_INTERVAL_MS)
                    .max(1),
            ),
            position: 0,
            identity: None,
            reader: None,
            waiting_logged: false,
        }
    }

    fn source_partition(&self) -> SourcePartition {
        BTreeMap::from([("path".to_string(), self.path.display().to_string())])
    }

    /// Opens the file at the current position; `Ok(false)`: it does not exist yet.
    fn open(&mut self) -> Result<bool, PluginError> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.waiting_logged {
                    tracing::info!(path = %self.path.display(), "file source: waiting for the file to be created");
                    self.waiting_logged = true;
                }
                return Ok(false);
            }
            Err(e) => {
                return Err(PluginError::Fatal(format!(
                    "file source: cannot open {}: {e}",
                    self.path.display()
                )))
            }
        };
        let metadata = file.metadata().map_err(|e| {
            PluginError::Retriable(format!(
                "file source: cannot inspect {}: {e}",
                self.path.display()
            ))
        })?;
        let (len, identity) = (metadata.len(), identity_of(&metadata));
        if self.identity.is_some_and(|known| known != identity) {
            tracing::warn!(
                path = %self.path.display(),
                stored_position = self.position,
                "file source: another file is at the path now (rotated or replaced); reading it from the start"
            );
            self.position = 0;
        } else if self.position > len {
            tracing::warn!(
                path = %self.path.display(),
                stored_position = self.position,
                length = len,
                "file source: the file is shorter than the stored position (truncated or replaced); reading it from the start"
            );
            self.position = 0;
        }
        file.seek(SeekFrom::Start(self.position)).map_err(|e| {
            PluginError::Fatal(format!(
                "file source: cannot seek in {}: {e}",
                self.path.display()
            ))
        })?;
        self.identity = Some(identity);
        self.reader = Some(BufReader::with_capacity(256 * 1024, file));
        Ok(true)
    }

    /// Reads up to `batch_size` complete lines.
    fn read_lines(&mut self) -> Result<Vec<(String, u64)>, PluginError> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(Vec::new());
        };
        let mut lines = Vec::new();
        let mut buf = Vec::new();
        while lines.len() < self.batch_size {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(|e| {
                PluginError::Retriable(format!(
                    "file source: cannot read {}: {e}",
                    self.path.display()
                ))
            })?;
            if n == 0 {
                break;
            }
            if buf.last() != Some(&b'\n') {
                // An incomplete line: read it again once it is complete.
                reader
                    .seek(SeekFrom::Start(self.position))
                    .map_err(|e| PluginError::Retriable(format!("file source: {e}")))?;
                break;
            }
            self.position += n as u64;
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            lines.push((String::from_utf8_lossy(&buf).into_owned(), self.position));
        }
        Ok(lines)
    }
}

#[async_trait]
impl SourceTask for FileSourceTask {
    fn partitions(&self) -> Vec<SourcePartition> {
        vec![self.source_partition()]
    }

    async fn start(
        &mut self,
        offsets: BTreeMap<SourcePartition, SourceOffset>,
    ) -> Result<(), PluginError> {
        if let Some(pos) = offsets
            .get(&self.source_partition())
            .and_then(|o| o.get(POSITION))
        {
            self.position = pos.parse().map_err(|_| {
                PluginError::Fatal(format!(
                    "file source: the stored offset {pos:?} of {} is not a byte position",
                    self.path.display()
                ))
            })?;
            tracing::info!(path = %self.path.display(), position = self.position, "file source: resuming");
            let stored = offsets.get(&self.source_partition());
            let id = |key: &str| stored.and_then(|o| o.get(key)).and_then(|v| v.parse().ok());
            self.identity = id(DEVICE).zip(id(INODE));
        }
        Ok(())
    }

    async fn poll(&mut self) -> Result<SourcePoll, PluginError> {
        if self.reader.is_none() && !tokio::task::block_in_place(|| self.open())? {
            tokio::time::sleep(self.poll_interval).await;
            return Ok(SourcePoll::Idle);
        }
        let lines = tokio::task::block_in_place(|| self.read_lines())?;
        if lines.is_empty() {
            // At the end: check for truncation or replacement on the next poll.
            self.reader = None;
            tokio::time::sleep(self.poll_interval).await;
            return Ok(SourcePoll::Idle);
        }
        let partition = self.source_partition();
        let (device, inode) = self.identity.unwrap_or_default();
        let (device, inode) = (device.to_string(), inode.to_string());
        Ok(SourcePoll::Records(
            lines
                .into_iter()
                .map(|(line, position)| SourceRecord {
                    partition: partition.clone(),
                    offset: BTreeMap::from([
                        (POSITION.to_string(), position.to_string()),
                        (DEVICE.to_string(), device.clone()),
                        (INODE.to_string(), inode.clone()),
                    ]),
                    record: crate::value_text::string_record(&self.topic, self.partition, line),
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &std::path::Path) -> FileSource {
        FileSource {
            path: path.display().to_string(),
            topic: "lines".into(),
            batch_size: Some(2),
            partition: None,
            poll_interval_ms: Some(10),
        }
    }

    fn texts(p: SourcePoll) -> Vec<(String, String)> {
        match p {
            SourcePoll::Records(r) => r
                .into_iter()
                .map(|r| {
                    (
                        crate::value_text::value_text(&r.record.value),
                        r.offset["position"].clone(),
                    )
                })
                .collect(),
            other => panic!("expected records, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn reads_complete_lines_in_batches_and_resumes_from_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "one\ntwo\r\nthree\nfou").unwrap();
        let mut t = FileSourceTask::new(&spec(&path));
        t.start(BTreeMap::new()).await.unwrap();
        assert_eq!(
            texts(t.poll().await.unwrap()),
            vec![("one".into(), "4".into()), ("two".into(), "9".into())]
        );
        assert_eq!(
            texts(t.poll().await.unwrap()),
            vec![("three".into(), "15".into())]
        );
        assert!(matches!(t.poll().await.unwrap(), SourcePoll::Idle));
        std::fs::write(&path, "one\ntwo\r\nthree\nfour\n").unwrap();
        assert_eq!(
            texts(t.poll().await.unwrap()),
            vec![("four".into(), "20".into())]
        );

        let mut again = FileSourceTask::new(&spec(&path));
        let stored = BTreeMap::from([(
            again.partitions()[0].clone(),
            BTreeMap::from([("position".to_string(), "9".to_string())]),
        )]);
        again.start(stored).await.unwrap();
        assert_eq!(
            texts(again.poll().await.unwrap()),
            vec![("three".into(), "15".into()), ("four".into(), "20".into())]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn waits_for_a_missing_file_and_restarts_a_truncated_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("later.txt");
        let mut t = FileSourceTask::new(&spec(&path));
        let stored = BTreeMap::from([(
            t.partitions()[0].clone(),
            BTreeMap::from([("position".to_string(), "100".to_string())]),
        )]);
        t.start(stored).await.unwrap();
        assert!(matches!(t.poll().await.unwrap(), SourcePoll::Idle));
        std::fs::write(&path, "x\n").unwrap();
        assert_eq!(
            texts(t.poll().await.unwrap()),
            vec![("x".into(), "2".into())]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_file_replaced_under_the_path_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "old-1\nold-2\n").unwrap();
        let mut t = FileSourceTask::new(&spec(&path));
        t.start(BTreeMap::new()).await.unwrap();
        assert_eq!(texts(t.poll().await.unwrap()).len(), 2);
        assert!(matches!(t.poll().await.unwrap(), SourcePoll::Idle));
        // Rotation: a longer file moved over the path, so the old position (12) falls inside
        // its first line.
        let next = dir.path().join("app.log.new");
        std::fs::write(&next, "new-line-1\nnew-line-2\nnew-3\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(
            texts(t.poll().await.unwrap()),
            vec![
                ("new-line-1".into(), "11".into()),
                ("new-line-2".into(), "22".into())
            ]
        );

        // The same after a restart: the stored offset names the old file.
        let stored = |inode: &str| {
            BTreeMap::from([(
                BTreeMap::from([("path".to_string(), path.display().to_string())]),
                BTreeMap::from([
                    ("position".to_string(), "12".to_string()),
                    ("device".to_string(), "1".to_string()),
                    ("inode".to_string(), inode.to_string()),
                ]),
            )])
        };
        let mut again = FileSourceTask::new(&spec(&path));
        again.start(stored("1")).await.unwrap();
        assert_eq!(texts(again.poll().await.unwrap())[0].0, "new-line-1");
        // A position without a file identity (as Kafka Connect stores it) is trusted.
        let mut connect = FileSourceTask::new(&spec(&path));
        let mut plain = stored("1");
        for offset in plain.values_mut() {
            offset.retain(|k, _| k == "position");
        }
        connect.start(plain).await.unwrap();
        assert_eq!(
            texts(connect.poll().await.unwrap())[0],
            ("ew-line-2".into(), "22".into())
        );
    }

    #[test]
    fn validation_names_fields() {
        let mut s = spec(std::path::Path::new("rel.txt"));
        s.topic = String::new();
        s.batch_size = Some(0);
        let fields: Vec<String> = validate(&s).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                "spec.source.file.path",
                "spec.source.file.topic",
                "spec.source.file.batchSize"
            ]
        );
    }
}
