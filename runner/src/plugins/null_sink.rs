//! The `null` sink: acknowledges every record without writing it (benchmarks and tests).

use async_trait::async_trait;

use super::{PluginError, SinkTask};
use crate::record::Record;

/// The `null` sink.
#[derive(Debug, Default)]
pub struct NullSinkTask;

#[async_trait]
impl SinkTask for NullSinkTask {
    async fn write(&mut self, _records: &[Record]) -> Result<(), PluginError> {
        Ok(())
    }
}
