//! The `file` sink: appends one line per record and flushes the file to disk before the
//! batch counts as written (so a commit of offsets never covers lines a crash could lose).
//!
//! A line is the record value's string form: strings as they are, bytes as UTF-8 (invalid
//! sequences replaced), other values as JSON, and an empty line for a null value.
//! Line breaks inside a value are escaped as `\n` so that one record stays one line.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use async_trait::async_trait;
use ferry_crds::plugins::FileSink;

use super::{PluginError, SinkTask};
use crate::config_error::ConfigError;
use crate::record::Record;

/// Bytes written to the file at a time.
const WRITE_CHUNK: usize = 1 << 20;

/// Checks a `file` sink block.
pub fn validate(spec: &FileSink) -> Vec<ConfigError> {
    super::check_absolute_path(&spec.path, "spec.sink.file.path")
        .into_iter()
        .collect()
}

/// The `file` sink.
#[derive(Debug)]
pub struct FileSinkTask {
    path: PathBuf,
    file: File,
    buffer: Vec<u8>,
    /// Length of the file up to the end of the last batch written and synced: where the
    /// next batch starts, and where a failed batch is cut back to.
    end: u64,
    /// Whether a failed batch may have left bytes after `end` (the cut itself failed).
    torn: bool,
}

impl FileSinkTask {
    /// Opens (or creates) the file for appending. A last line without its line break (a
    /// write cut short by a crash, never acknowledged) is removed first: its record was not
    /// committed and will be written again.
    pub fn open(spec: &FileSink) -> Result<Self, PluginError> {
        let path = PathBuf::from(&spec.path);
        let fail = |what: &str, e: std::io::Error| {
            PluginError::Fatal(format!("file sink: cannot {what} {}: {e}", path.display()))
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| fail("open", e))?;
        let len = file.metadata().map_err(|e| fail("inspect", e))?.len();
        let keep = complete_lines_len(&mut file, len).map_err(|e| fail("read", e))?;
        if keep < len {
            tracing::warn!(
                path = %path.display(),
                removed_bytes = len - keep,
                "file sink: removing an incomplete last line left by an interrupted write"
            );
            file.set_len(keep).map_err(|e| fail("truncate", e))?;
            file.sync_all().map_err(|e| fail("flush", e))?;
        }
        file.seek(SeekFrom::Start(keep))
            .map_err(|e| fail("seek in", e))?;
        Ok(Self {
            path,
            file,
            buffer: Vec::with_capacity(WRITE_CHUNK + 64 * 1024),
            end: keep,
            torn: false,
        })
    }

    /// Appends the lines of `records` at `end` and syncs them; returns the new end.
    fn append(&mut self, records: &[Record]) -> std::io::Result<u64> {
        let (file, buffer) = (&mut self.file, &mut self.buffer);
        let mut end = self.end;
        buffer.clear();
        for r in records {
            render_line(r, buffer);
            buffer.push(b'\n');
            // Write in chunks so the buffer stays small, whatever the batch size.
            if buffer.len() >= WRITE_CHUNK {
                file.write_all(buffer)?;
                end += buffer.len() as u64;
                buffer.clear();
            }
        }
        file.write_all(buffer)?;
        end += buffer.len() as u64;
        buffer.clear();
        file.sync_data()?;
        Ok(end)
    }

    /// Cuts the file back to `end`, removing what a failed batch wrote after it (part of
    /// the batch, or all of it when only the sync failed: after a failed fsync the kernel
    /// may have dropped those pages, so they are written again, never trusted).
    fn cut_back(&mut self) -> std::io::Result<()> {
        self.file.set_len(self.end)?;
        self.file.seek(SeekFrom::Start(self.end))?;
        self.file.sync_all()?;
        self.torn = false;
        Ok(())
    }
}

/// Length of the file up to and including its last line break.
fn complete_lines_len(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = usize::try_from(end - start).unwrap_or(chunk.len());
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..n])?;
        if let Some(i) = chunk[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Appends the line of `record` (without the line break) to `out`.
pub fn render_line(record: &Record, out: &mut Vec<u8>) {
    use crate::data::Value;
    match &record.value.value {
        Value::Null => {}
        Value::String(s) => escape_into(s.as_bytes(), out),
        // Validating is much faster than the lossy conversion, which is only for bad bytes.
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(text) => escape_into(text.as_bytes(), out),
            Err(_) => escape_into(String::from_utf8_lossy(b).as_bytes(), out),
        },
        _ => escape_into(crate::value_text::value_text(&record.value).as_bytes(), out),
    }
}

/// Copies `text` to `out`, writing line breaks as `\n` and `\r` so that a record stays on
/// one line.
fn escape_into(text: &[u8], out: &mut Vec<u8>) {
    let mut rest = text;
    while let Some(i) = memchr::memchr2(b'\n', b'\r', rest) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(if rest[i] == b'\n' { b"\\n" } else { b"\\r" });
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

#[async_trait]
impl SinkTask for FileSinkTask {
    /// Writes the batch after the last one, or nothing of it: a batch that fails part-way
    /// (a full disk, a failed fsync) is cut back to where it started before the error is
    /// returned, so that its retry writes each line once.
    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
        tokio::task::block_in_place(|| {
            if self.torn {
                self.cut_back().map_err(|e| {
                    PluginError::Retriable(format!(
                        "file sink: cannot cut {} back to the end of the last batch written ({} bytes): {e}",
                        self.path.display(),
                        self.end
                    ))
                })?;
            }
            match self.append(records) {
                Ok(end) => {
                    self.end = end;
                    Ok(())
                }
                Err(e) => {
                    self.torn = true;
                    let undone = match self.cut_back() {
                        Ok(()) => "the batch was removed and is written again",
                        Err(_) => "cutting the batch back failed too and is retried first",
                    };
                    Err(PluginError::Retriable(format!(
                        "file sink: cannot write {}: {e} ({undone})",
                        self.path.display()
                    )))
                }
            }
        })
    }

    /// Lines hold values only.
    fn reads_headers(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_records_on_one_line() {
        let mut out = Vec::new();
        escape_into(b"a\nb\r\nc", &mut out);
        assert_eq!(out, b"a\\nb\\r\\nc");
        let mut r = Record::new("t");
        r.value =
            crate::data::SchemaAndValue::schemaless(crate::data::Value::Bytes(b"x\ny".to_vec()));
        out.clear();
        render_line(&r, &mut out);
        assert_eq!(out, b"x\\ny");
    }

    #[test]
    fn validation_requires_an_absolute_path() {
        let errs = validate(&FileSink {
            path: "out.txt".into(),
        });
        assert_eq!(errs[0].field, "spec.sink.file.path");
        assert!(validate(&FileSink {
            path: "/tmp/out.txt".into()
        })
        .is_empty());
    }

    #[test]
    fn opening_removes_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, "a\nb\npartial").unwrap();
        let spec = FileSink {
            path: path.display().to_string(),
        };
        drop(FileSinkTask::open(&spec).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\n");
        std::fs::write(&path, "no newline at all").unwrap();
        drop(FileSinkTask::open(&spec).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }
}
