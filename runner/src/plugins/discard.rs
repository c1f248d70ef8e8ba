//! The `discard` sink (a null sink): acknowledges every record without writing it, for
//! benchmarks and tests.

use async_trait::async_trait;

use super::{PluginError, SinkTask};
use crate::record::Record;

/// The `discard` sink.
#[derive(Debug, Default)]
pub struct DiscardSinkTask;

#[async_trait]
impl SinkTask for DiscardSinkTask {
    async fn write(&mut self, _records: &[Record]) -> Result<(), PluginError> {
        Ok(())
    }

    fn reads_headers(&self) -> bool {
        false
    }
}
