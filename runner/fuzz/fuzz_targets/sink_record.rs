//! A record from Kafka through a sink task's converters and transforms
//! (`decode_and_transform`), under many configurations: every converter for keys, values and
//! headers, and every transform and predicate on its own and in one long chain. No input may
//! panic; a failure must be an ordinary failed record.
#![no_main]

use std::sync::OnceLock;

use ferry_runner::metrics::TaskMetrics;
use ferry_runner::plugins::TaskShare;
use ferry_runner::processing::{decode_and_transform, StageTally};
use ferry_runner::record::RawRecord;
use ferry_runner::task_config::{load, CheckMode, TaskConfig};
use libfuzzer_sys::fuzz_target;

const CONVERTERS: &[&str] = &[
    "{key: {string: {}}, value: {json: {schemas: false}}, header: {simple: {}}}",
    "{key: {json: {schemas: true}}, value: {json: {schemas: true}}, header: {json: {schemas: true}}}",
    "{key: {byteArray: {}}, value: {string: {}}, header: {string: {}}}",
    "{key: {json: {schemas: false}}, value: {json: {schemas: true}}, header: {json: {schemas: false}}}",
];

const TRANSFORMS: &[&str] = &[
    "{cast: {target: value, spec: [{field: id, type: int64}, {field: ok, type: boolean}, {field: f, type: float32}, {field: s, type: string}]}}",
    "{cast: {target: value, spec: [{type: int8}]}}",
    "{cast: {target: key, spec: [{type: string}]}}",
    "{dropHeaders: {headers: [trace, span]}}",
    "{extractField: {target: key, field: id}}",
    "{extractField: {field: address.city, fieldSyntaxVersion: V2}}",
    "{filter: {}, predicate: {recordIsTombstone: {}}}",
    "{filter: {}, predicate: {hasHeaderKey: {name: keep}}, negate: true}",
    "{flatten: {delimiter: _}}",
    "{headerFrom: {fields: [id], headers: [order-id], operation: move}}",
    "{hoistField: {field: payload}}",
    "{insertField: {topic: {field: t}, partition: {field: p}, offset: {field: o}, timestamp: {field: ts}, static: {field: src, value: shop}}}",
    "{insertHeader: {header: origin, valueLiteral: \"{€:1}\"}}",
    "{maskField: {fields: [card, n], replacement: \"****\"}}",
    "{maskField: {fields: [card, n]}}",
    "{regexRouter: {regex: \"orders-(.*)\", replacement: \"$1-orders\"}}",
    "{replaceField: {exclude: [secret], renames: [{from: a, to: b}]}}",
    "{setSchemaMetadata: {name: com.example.Order, version: 2}}",
    "{timestampConverter: {field: created, targetType: string, format: \"yyyy-MM-dd'T'HH:mm:ss.SSSXXX\"}}",
    "{timestampConverter: {field: created, targetType: Timestamp, format: \"yyyy-MM-dd HH:mm:ss\"}}",
    "{timestampConverter: {targetType: unix, unixPrecision: microseconds}}",
    "{timestampConverter: {field: d, targetType: Date}}",
    "{timestampRouter: {topicFormat: \"${topic}-${timestamp}\", timestampFormat: yyyyMMdd}}",
    "{valueToKey: {fields: [id, n]}, predicate: {topicNameMatches: {pattern: \"orders.*\"}}}",
    "{extractNewRecordState: {dropTombstones: false, deleteHandlingMode: rewrite, addFields: [op, table, lsn, source.ts_ms], addHeaders: [db]}}",
];

/// Every converter setting with no transform, with each transform alone, and with all of
/// them in one chain (each a config, loaded as a task would load it).
fn configs() -> &'static [TaskConfig] {
    static CONFIGS: OnceLock<Vec<TaskConfig>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let named = |items: &[&str]| -> String {
            let items: Vec<String> = items
                .iter()
                .enumerate()
                .map(|(i, t)| format!("{{name: t{i}, {}", &t[1..]))
                .collect();
            format!("[{}]", items.join(", "))
        };
        let mut chains = vec!["[]".to_string()];
        chains.extend(TRANSFORMS.iter().map(|t| named(&[t])));
        chains.push(named(TRANSFORMS));
        let mut out = Vec::new();
        for (c, converters) in CONVERTERS.iter().enumerate() {
            for (t, transforms) in chains.iter().enumerate() {
                let errors = if (c + t) % 2 == 0 {
                    "{tolerance: All, deadLetterQueue: {topic: dlq, contextHeaders: true}}"
                } else {
                    "{tolerance: None}"
                };
                let yaml = format!(
                    "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: fuzz, namespace: f}}\nspec:\n  kafka: {{bootstrapServers: \"b:9092\"}}\n  sink: {{topics: [orders], discard: {{}}}}\n  converters: {converters}\n  transforms: {transforms}\n  errors: {errors}\n"
                );
                let config = load(
                    &yaml,
                    TaskShare { index: 0, count: 1 },
                    &Default::default(),
                    CheckMode::Offline,
                )
                .unwrap_or_else(|e| panic!("fuzz config {c}/{t} is refused: {e:?}\n{yaml}"));
                out.push(config);
            }
        }
        out
    })
}

type Input<'a> = (
    u16,
    Option<&'a [u8]>,
    Option<&'a [u8]>,
    Vec<(&'a str, Option<&'a [u8]>)>,
    Option<i64>,
    bool,
);

fuzz_target!(|input: Input<'_>| {
    let (choice, key, value, headers, timestamp, other_topic) = input;
    let configs = configs();
    let cfg = &configs[usize::from(choice) % configs.len()];
    static METRICS: OnceLock<std::sync::Arc<TaskMetrics>> = OnceLock::new();
    let metrics = METRICS.get_or_init(|| TaskMetrics::new("f", "fuzz", 0));
    let raw = RawRecord {
        topic: if other_topic {
            "orders-eu".into()
        } else {
            "orders".into()
        },
        partition: Some(0),
        offset: Some(7),
        timestamp,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
            .collect(),
    };
    let mut tally = StageTally::default();
    let _ = decode_and_transform(cfg, metrics, &mut tally, raw);
});
