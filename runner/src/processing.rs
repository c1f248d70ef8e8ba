//! Per-record processing shared by both pipelines: converters and transforms, with each
//! failure described for error handling (stage, component, cause).

use crate::error_handling::{RecordFailure, Stage};
use crate::failure::keeps_bytes;
use crate::metrics::{PipelineStage, TaskMetrics};
use crate::record::{RawRecord, Record};
use crate::task_config::TaskConfig;

/// What became of one record read from Kafka.
pub enum Processed {
    /// Ready for the sink.
    Record(Record),
    /// Dropped by a filter.
    Filtered,
    /// Failed; the original record is kept when the dead letter queue or the error log
    /// needs its bytes.
    Failed(Option<RawRecord>, RecordFailure),
}

/// Records counted into the stages of `ferry_task_records_in_total` and not yet added to
/// the metrics: a busy pipeline adds them once per batch of records instead of once per
/// record and stage.
#[derive(Debug, Default)]
pub struct StageTally {
    /// Records read.
    pub read: u64,
    /// Records that entered the converters.
    pub convert: u64,
    /// Records that entered the transforms.
    pub transform: u64,
}

impl StageTally {
    /// Adds the counts to `metrics` and starts again from zero.
    pub fn flush(&mut self, metrics: &TaskMetrics) {
        for (stage, n) in [
            (PipelineStage::Read, self.read),
            (PipelineStage::Convert, self.convert),
            (PipelineStage::Transform, self.transform),
        ] {
            if n > 0 {
                metrics.records_in(stage, n);
            }
        }
        *self = StageTally::default();
    }
}

/// Decodes a Kafka record and runs the transforms (sink side), counting the stages it
/// entered in `tally` (filtered records go straight to `metrics`).
pub fn decode_and_transform(
    cfg: &TaskConfig,
    metrics: &TaskMetrics,
    tally: &mut StageTally,
    raw: RawRecord,
) -> Processed {
    tally.convert += 1;
    let original = keeps_bytes(&cfg.errors).then(|| raw.clone());
    let record = match cfg.converters.decode(raw) {
        Ok(r) => r,
        Err(e) => return Processed::Failed(original, convert_failure(&e)),
    };
    tally.transform += 1;
    match cfg.transforms.apply(record) {
        Ok(Some(r)) => Processed::Record(r),
        Ok(None) => {
            metrics.filtered();
            Processed::Filtered
        }
        Err(e) => Processed::Failed(original, transform_failure(&e)),
    }
}

/// What became of one record read by a source plugin.
pub enum Produced {
    /// Ready for the producer.
    Raw(RawRecord),
    /// Dropped by a filter.
    Filtered,
    /// Failed.
    Failed(RecordFailure),
}

/// Runs the transforms and encodes a source record (source side).
pub fn transform_and_encode(cfg: &TaskConfig, metrics: &TaskMetrics, record: Record) -> Produced {
    metrics.records_in(PipelineStage::Transform, 1);
    let record = match cfg.transforms.apply(record) {
        Ok(Some(r)) => r,
        Ok(None) => {
            metrics.filtered();
            return Produced::Filtered;
        }
        Err(e) => return Produced::Failed(transform_failure(&e)),
    };
    metrics.records_in(PipelineStage::Convert, 1);
    match cfg.converters.encode(&record) {
        Ok(raw) => Produced::Raw(raw),
        Err(e) => Produced::Failed(convert_failure(&e)),
    }
}

/// Describes a converter failure.
pub fn convert_failure(e: &crate::convert::ConvertError) -> RecordFailure {
    use crate::convert::RecordPart;
    let (stage, part) = match &e.part {
        RecordPart::Key => (Stage::KeyConverter, "key"),
        RecordPart::Value => (Stage::ValueConverter, "value"),
        RecordPart::Header(_) => (Stage::HeaderConverter, "header"),
    };
    let mut f =
        RecordFailure::from_error(stage, format!("ferry.converter.{part}"), "ConvertError", e);
    // The coordinates are said once, by whoever reports the failure.
    f.message = format!("cannot {} the {}: {}", e.action, e.part, e.reason);
    f
}

/// Describes a transform failure.
pub fn transform_failure(e: &crate::transform::TransformError) -> RecordFailure {
    let mut f = RecordFailure::from_error(
        Stage::Transformation,
        format!("ferry.transform.{}", e.transform),
        "TransformError",
        e,
    );
    f.message = format!("transform {:?}: {}", e.transform, e.reason);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_adds_its_counts_once_and_starts_again() {
        let m = TaskMetrics::new("shop", "orders", 0);
        let mut tally = StageTally {
            read: 3,
            convert: 3,
            transform: 2,
        };
        tally.flush(&m);
        tally.flush(&m);
        tally.read += 1;
        tally.flush(&m);
        assert_eq!(m.records_read_total(), 4);
        let text = m.encode();
        for needle in [
            "stage=\"read\"} 4",
            "stage=\"convert\"} 3",
            "stage=\"transform\"} 2",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
