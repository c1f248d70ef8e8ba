//! Reading and writing `KafkaConnector` YAML: the DESIGN example, defaults, round trips and
//! offsets resets.

use ferry_crds::connector::{
    ConnectorState, Delivery, KafkaConnector, KafkaConnectorSpec, OffsetReset, OffsetTarget,
    RestartPolicySpec, SaslMechanism, SinkOffset,
};
use ferry_crds::errors::Tolerance;
use ferry_crds::plugins::{SinkPlugin, SourcePlugin};
use ferry_crds::status::{ConnectorPhase, KafkaConnectorStatus, TasksStatus};

/// The DESIGN sketch, with the plugins Ferry ships (`file` sink instead of `postgres`).
const DESIGN_EXAMPLE: &str = r#"
apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {name: orders-to-file, namespace: shop}
spec:
  kafka:
    bootstrapServers: kafka:9092
    tls: {ca: {name: kafka-ca, key: ca.crt}}
    sasl:
      mechanism: SCRAM-SHA-512
      username: {secretKeyRef: {name: kafka-user, key: username}}
      password: {secretKeyRef: {name: kafka-user, key: password}}
    config: {compression.type: zstd}
  sink:
    topics: [orders]
    file: {path: /data/orders.jsonl}
  tasks: 2
  autoscaling: {minTasks: 1, maxTasks: 8, lagPerTask: 10000, scaleDownStabilizationSeconds: 300}
  state: Running
  converters: {key: {string: {}}, value: {json: {schemas: false}}}
  transforms:
    - {name: addSource, insertField: {static: {field: source, value: shop}}}
    - {name: dropTest, filter: {}, predicate: {topicNameMatches: {pattern: "test-.*"}}}
  errors: {tolerance: All, retryTimeoutSeconds: 300, deadLetterQueue: {topic: orders-dlq, contextHeaders: true}}
  delivery: AtLeastOnce
  restartPolicy: {initialBackoffSeconds: 1, maxBackoffSeconds: 300}
  offsets:
    reset: {id: replay-2026-11-22, to: Earliest}
  image: ferry/runner:0.1.0
  template: {pod: {resources: {limits: {memory: 256Mi}}, nodeSelector: {disk: ssd}, tolerations: [], annotations: {team: shop}}}
status:
  observedGeneration: 3
  state: Running
  conditions:
    - {type: Ready, status: "True", reason: AllTasksReady, message: "2 of 2 tasks ready", lastTransitionTime: "2026-11-22T08:00:00Z"}
  tasks:
    desired: 2
    ready: 2
    items:
      - {index: 0, pod: orders-to-file-task-0, phase: Running, restarts: 1,
         lastFailure: {reason: Error, message: "broker unreachable", exitCode: 1, at: "2026-11-22T07:59:00Z"}}
      - {index: 1, pod: orders-to-file-task-1, phase: Running, restarts: 0}
  tasksReady: 2/2
  replicas: 2
  selector: ferry.rs/connector=orders-to-file
  restarts: 1
  lag: 1234
  offsetReset: {appliedId: replay-2026-11-22, at: "2026-11-22T07:00:00Z"}
  autoscaler: {desiredTasks: 2, reason: "lag 1234 / 10000 per task", at: "2026-11-22T07:30:00Z"}
"#;

fn spec(yaml: &str) -> KafkaConnectorSpec {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

#[test]
fn design_example_parses() {
    let kc: KafkaConnector = serde_yaml::from_str(DESIGN_EXAMPLE).unwrap();
    assert_eq!(kc.metadata.name.as_deref(), Some("orders-to-file"));
    let s = &kc.spec;
    assert_eq!(s.kafka.bootstrap_servers, "kafka:9092");
    let sasl = s.kafka.sasl.as_ref().unwrap();
    assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
    assert_eq!(sasl.password.secret_key_ref.name, "kafka-user");
    assert_eq!(
        s.kafka.tls.as_ref().unwrap().ca.as_ref().unwrap().key,
        "ca.crt"
    );
    assert_eq!(s.kafka.config["compression.type"], "zstd");
    assert!(!s.is_source());
    assert!(s.is_sink());
    let sink = s.sink.as_ref().unwrap();
    assert_eq!(sink.topics, ["orders"]);
    assert!(matches!(&sink.plugin, SinkPlugin::File(f) if f.path == "/data/orders.jsonl"));
    assert_eq!(s.desired_tasks(), 2);
    assert_eq!(s.autoscaling.as_ref().unwrap().max_tasks, 8);
    assert_eq!(s.transforms.len(), 2);
    assert_eq!(s.errors.as_ref().unwrap().tolerance, Tolerance::All);
    let reset = s.offsets.as_ref().unwrap().reset.as_ref().unwrap();
    assert_eq!(reset.id, "replay-2026-11-22");
    assert_eq!(reset.to, OffsetTarget::Earliest);
    let pod = s.template.as_ref().unwrap().pod.as_ref().unwrap();
    assert_eq!(pod.node_selector["disk"], "ssd");
    assert!(pod.resources.as_ref().unwrap().limits.is_some());

    let status = kc.status.as_ref().unwrap();
    assert_eq!(status.state, Some(ConnectorPhase::Running));
    assert_eq!(status.conditions[0].type_, "Ready");
    let tasks = status.tasks.as_ref().unwrap();
    assert_eq!(tasks.summary(), "2/2");
    assert_eq!(
        tasks.items[0].last_failure.as_ref().unwrap().exit_code,
        Some(1)
    );
    assert_eq!(
        status.offset_reset.as_ref().unwrap().applied_id,
        "replay-2026-11-22"
    );
}

#[test]
fn defaults_of_a_minimal_connector() {
    let s = spec("{kafka: {bootstrapServers: 'k:9092'}, source: {datagen: {topic: t}}}");
    assert!(s.is_source());
    assert!(matches!(
        s.source.as_ref().unwrap().plugin,
        SourcePlugin::Datagen(_)
    ));
    assert_eq!(s.tasks, None);
    assert_eq!(s.desired_tasks(), 1);
    assert_eq!(s.state, ConnectorState::Running);
    assert_eq!(s.delivery, Delivery::AtLeastOnce);
    assert!(s.transforms.is_empty());
    assert!(s.kafka.config.is_empty());
    assert_eq!(
        s.restart_policy(),
        RestartPolicySpec {
            initial_backoff_seconds: 1,
            max_backoff_seconds: 300,
            reset_after_seconds: 600
        }
    );
    assert_eq!(s.stall_after_seconds(), 300);
}

#[test]
fn nested_defaults() {
    let s = spec(
        "{kafka: {bootstrapServers: 'k:9092'}, sink: {topicsRegex: 'a.*', discard: {}},
          autoscaling: {maxTasks: 4, lagPerTask: 100}, restartPolicy: {maxBackoffSeconds: 60},
          progress: {}, offsets: {}}",
    );
    let a = s.autoscaling.unwrap();
    assert_eq!(
        (
            a.min_tasks,
            a.scale_up_stabilization_seconds,
            a.scale_down_stabilization_seconds
        ),
        (1, 0, 300)
    );
    let r = s.restart_policy.unwrap();
    assert_eq!(
        (
            r.initial_backoff_seconds,
            r.max_backoff_seconds,
            r.reset_after_seconds
        ),
        (1, 60, 600)
    );
    assert_eq!(s.progress.unwrap().stall_after_seconds, 300);
    assert!(!s.offsets.unwrap().delete_on_removal);
}

#[test]
fn desired_tasks_stays_in_range() {
    assert_eq!(
        spec("{kafka: {bootstrapServers: 'k:1'}, source: {datagen: {topic: t}}, tasks: 5}")
            .desired_tasks(),
        5
    );
    // The API server refuses these; a file read by the runner without it must not yield them.
    assert_eq!(
        spec("{kafka: {bootstrapServers: 'k:1'}, source: {datagen: {topic: t}}, tasks: 0}")
            .desired_tasks(),
        1
    );
    assert_eq!(
        spec("{kafka: {bootstrapServers: 'k:1'}, source: {datagen: {topic: t}}, tasks: 5000}")
            .desired_tasks(),
        1000
    );
}

#[test]
fn round_trip_keeps_everything() {
    let kc: KafkaConnector = serde_yaml::from_str(DESIGN_EXAMPLE).unwrap();
    let yaml = serde_yaml::to_string(&kc).unwrap();
    let again: KafkaConnector = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(again.spec, kc.spec);
    assert_eq!(again.status, kc.status);
    let json = serde_json::to_string(&kc).unwrap();
    let again: KafkaConnector = serde_json::from_str(&json).unwrap();
    assert_eq!(again.spec, kc.spec);
}

#[test]
fn unset_fields_are_not_written() {
    let s = spec("{kafka: {bootstrapServers: 'k:9092'}, source: {file: {path: /in, topic: t}}}");
    let value = serde_json::to_value(&s).unwrap();
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["delivery", "kafka", "source", "state"]);
    let status = serde_json::to_value(KafkaConnectorStatus::default()).unwrap();
    assert_eq!(status, serde_json::json!({}));
    let tasks = serde_json::to_value(TasksStatus::default()).unwrap();
    assert_eq!(tasks, serde_json::json!({"desired": 0, "ready": 0}));
}

#[test]
fn unknown_fields_are_rejected() {
    for yaml in [
        "{kafka: {bootstrapServers: 'k:1'}, source: {datagen: {topic: t}}, taks: 2}",
        "{kafka: {bootstrapServers: 'k:1', bootstrap: x}, source: {datagen: {topic: t}}}",
        "{kafka: {bootstrapServers: 'k:1'}, source: {datagen: {topic: t}}, restartPolicy: {maxBackoff: 3}}",
    ] {
        let err = serde_yaml::from_str::<KafkaConnectorSpec>(yaml).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{yaml}: {err}");
    }
}

#[test]
fn enums_use_their_api_spelling() {
    let s = spec("{kafka: {bootstrapServers: 'k:1', sasl: {mechanism: PLAIN, username: {secretKeyRef: {name: a, key: u}}, password: {secretKeyRef: {name: a, key: p}}}}, source: {datagen: {topic: t}}, state: Paused, delivery: ExactlyOnce}");
    assert_eq!(s.kafka.sasl.unwrap().mechanism.as_str(), "PLAIN");
    assert_eq!(s.state.to_string(), "Paused");
    assert_eq!(s.delivery, Delivery::ExactlyOnce);
    assert!(serde_yaml::from_str::<KafkaConnectorSpec>(
        "{kafka: {bootstrapServers: 'k:1'}, source: {datagen: {topic: t}}, state: paused}"
    )
    .is_err());
    assert_eq!(
        serde_json::to_value(SaslMechanism::ScramSha256).unwrap(),
        "SCRAM-SHA-256"
    );
    assert_eq!(ConnectorPhase::Resetting.to_string(), "Resetting");
}

fn reset(yaml: &str) -> Result<OffsetReset, String> {
    serde_yaml::from_str::<OffsetReset>(yaml).map_err(|e| e.to_string())
}

#[test]
fn offsets_reset_targets() {
    assert_eq!(
        reset("{id: a, to: Latest}").unwrap().to,
        OffsetTarget::Latest
    );
    let OffsetTarget::Timestamp(at) = reset("{id: a, to: '2026-11-22T08:00:00Z'}").unwrap().to
    else {
        panic!("an RFC 3339 time is a timestamp");
    };
    assert_eq!(at.as_millisecond(), 1_795_334_400_000);
    let OffsetTarget::Timestamp(at) = reset("{id: a, to: '2026-11-22T09:00:00+01:00'}")
        .unwrap()
        .to
    else {
        panic!("an offset time is a timestamp");
    };
    assert_eq!(at.as_millisecond(), 1_795_334_400_000);
    let OffsetTarget::Timestamp(at) = reset("{id: a, to: '1795334400000'}").unwrap().to else {
        panic!("milliseconds are a timestamp");
    };
    assert_eq!(at.to_string(), "2026-11-22T08:00:00Z");
    assert_eq!(
        reset("{id: a, sinkOffsets: [{topic: t, partition: 0, offset: 42}]}")
            .unwrap()
            .to,
        OffsetTarget::Sink(vec![SinkOffset {
            topic: "t".into(),
            partition: 0,
            offset: 42
        }])
    );
    let OffsetTarget::Source(offsets) =
        reset("{id: a, sourceOffsets: [{partition: {path: /in}, offset: {position: '10'}}]}")
            .unwrap()
            .to
    else {
        panic!("source offsets");
    };
    assert_eq!(offsets[0].offset["position"], "10");
}

#[test]
fn offsets_reset_errors_name_the_field() {
    let err = reset("{id: a}").unwrap_err();
    assert!(
        err.contains("spec.offsets.reset needs exactly one of to, sinkOffsets or sourceOffsets"),
        "{err}"
    );
    let err = reset("{id: a, to: Earliest, sinkOffsets: [{topic: t, partition: 0, offset: 1}]}")
        .unwrap_err();
    assert!(err.contains("exactly one of"), "{err}");
    let err = reset("{id: a, to: yesterday}").unwrap_err();
    assert!(
        err.contains("spec.offsets.reset.to: \"yesterday\" is not Earliest, Latest"),
        "{err}"
    );
    let err = reset("{id: a, to: '99999999999999999999999'}").unwrap_err();
    assert!(err.contains("spec.offsets.reset.to"), "{err}");
}

#[test]
fn offsets_reset_round_trips() {
    for yaml in [
        "{id: a, to: Earliest}",
        "{id: a, to: '2026-11-22T08:00:00Z'}",
        "{id: a, sinkOffsets: [{topic: t, partition: 1, offset: 2}]}",
        "{id: a, sourceOffsets: [{partition: {path: /in}, offset: {position: '10'}}]}",
    ] {
        let r = reset(yaml).unwrap();
        let written = serde_yaml::to_string(&r).unwrap();
        assert_eq!(reset(&written).unwrap(), r, "{written}");
    }
}

fn spec_error(yaml: &str) -> String {
    serde_yaml::from_str::<KafkaConnectorSpec>(yaml)
        .unwrap_err()
        .to_string()
}

#[test]
fn plugin_blocks_are_read_strictly() {
    let s = spec("{kafka: {bootstrapServers: 'k:1'}, sink: {topics: [a, b], discard: {}}}");
    assert!(matches!(
        s.sink.as_ref().unwrap().plugin,
        SinkPlugin::Discard(_)
    ));
    assert_eq!(s.sink.unwrap().topics, ["a", "b"]);

    let err = spec_error(
        "{kafka: {bootstrapServers: 'k:1'}, sink: {topics: [a], file: {path: /o}, discard: {}}}",
    );
    assert!(
        err.contains("spec.sink must hold exactly one plugin block, found discard and file"),
        "{err}"
    );
    let err = spec_error("{kafka: {bootstrapServers: 'k:1'}, sink: {topics: [a]}}");
    assert!(
        err.contains(
            "spec.sink must hold exactly one plugin block: file, discard, postgres or mysql"
        ),
        "{err}"
    );
    let err = spec_error(
        "{kafka: {bootstrapServers: 'k:1'}, sink: {topics: [a], discard: {}, topic: b}}",
    );
    assert!(err.contains("spec.sink: unknown field `topic`, expected topics, topicsRegex or a plugin block (file, discard, postgres or mysql)"), "{err}");
    let err = spec_error("{kafka: {bootstrapServers: 'k:1'}, sink: {topics: a, discard: {}}}");
    assert!(err.contains("spec.sink.topics: invalid type"), "{err}");
    let err = spec_error("{kafka: {bootstrapServers: 'k:1'}, source: {file: {topic: t}}}");
    assert!(
        err.contains("spec.source.file: missing field `path`"),
        "{err}"
    );
    let err = spec_error("{kafka: {bootstrapServers: 'k:1'}, source: {kafka: {}}}");
    assert!(
        err.contains(
            "spec.source: unknown field `kafka`, expected a plugin block (file, datagen or postgresCdc)"
        ),
        "{err}"
    );
}

#[test]
fn odd_input_is_an_error_not_a_panic() {
    let kafka = "kafka: {bootstrapServers: 'k:1'}";
    let sink = "sink: {topics: [a], discard: {}}";
    for rest in [
        "sink: []".to_owned(),
        "sink: 5".to_owned(),
        "sink: {topics: {a: b}, discard: {}}".to_owned(),
        "sink: {topics: [a], discard: 3}".to_owned(),
        "sink: {topicsRegex: [a], file: {path: /o}}".to_owned(),
        "source: {file: null}".to_owned(),
        "source: {datagen: {topic: t}, datagen2: {}}".to_owned(),
        "source: ''".to_owned(),
        format!("{sink}, offsets: {{reset: {{id: a, to: earliest}}}}"),
        format!("{sink}, offsets: {{reset: {{id: a, to: '-1'}}}}"),
        format!("{sink}, offsets: {{reset: {{id: a, to: '2026-13-45T99:00:00Z'}}}}"),
        format!("{sink}, offsets: {{reset: {{id: a, sinkOffsets: []}}}}"),
        format!("{sink}, tasks: 99999999999"),
        format!("{sink}, tasks: -3"),
        format!("{sink}, transforms: [{{name: '', filter: {{}}}}]"),
    ] {
        let yaml = format!("{{{kafka}, {rest}}}");
        if let Err(e) = serde_yaml::from_str::<KafkaConnectorSpec>(&yaml) {
            assert!(!e.to_string().is_empty());
        }
        // Whether or not it parses, admission refuses it.
        let spec: serde_json::Value = serde_yaml::from_str(&yaml).expect("YAML");
        let object = serde_json::json!({
            "apiVersion": "ferry.rs/v1alpha1", "kind": "KafkaConnector",
            "metadata": {"name": "odd"}, "spec": spec,
        });
        assert!(
            ferry_crds::admission::admit(&object).is_err(),
            "{yaml} was admitted"
        );
    }
}
