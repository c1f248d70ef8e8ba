//! Two tasks of one sink connector against a real broker: one consumer group
//! `ferry.<namespace>.<connector>`, static members `<connector>-task-<i>`, cooperative-sticky
//! assignment, the partitions split between the tasks, and every offset committed once the
//! records are written.

mod runner_support;

use std::time::{Duration, Instant};

use ferry_e2e::harness::Stack;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use runner_support::*;

async fn records_out(admin: &str) -> u64 {
    let Some((_, body)) = http_get(admin, "/progress").await else {
        return 0;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["recordsOut"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_share_one_group_with_static_membership() {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("group");
    let name = unique("grp");
    create_topic(&stack.kafka_bootstrap, &topic, 4).await;
    let file = dir.path().join("connector.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: {name}, namespace: e2e}}\nspec:\n  kafka: {{bootstrapServers: \"{}\"}}\n  sink: {{topics: [{topic}], discard: {{}}}}\n  converters: {{value: {{string: {{}}}}}}\n",
            stack.kafka_bootstrap
        ),
    )
    .expect("write");
    let admin0 = free_admin_addr();
    let admin1 = free_admin_addr();
    let mut t0 = spawn_runner(
        &stack,
        &file,
        &admin0,
        &[("FERRY_TASK_INDEX", "0"), ("FERRY_TASK_COUNT", "2")],
    );
    let file1 = dir.path().join("connector-1.yaml");
    std::fs::copy(&file, &file1).expect("copy");
    let mut t1 = spawn_runner(
        &stack,
        &file1,
        &admin1,
        &[("FERRY_TASK_INDEX", "1"), ("FERRY_TASK_COUNT", "2")],
    );

    // Produce once both tasks hold partitions, so that each one has records to write.
    let bootstrap = stack.kafka_bootstrap.clone();
    let group = format!("ferry.e2e.{name}");
    let wanted = topic.clone();
    let stable = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(list) = c.fetch_group_list(Some(&group), Duration::from_secs(5)) {
                if list.groups().iter().any(|g| {
                    g.state() == "Stable"
                        && g.members().len() == 2
                        && g.members().iter().all(|m| {
                            // The encoded assignment names the topic only when it holds
                            // partitions of it.
                            m.assignment().is_some_and(|a| {
                                a.windows(wanted.len()).any(|w| w == wanted.as_bytes())
                            })
                        })
                }) {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    })
    .await
    .expect("group state");
    assert!(
        stable,
        "both tasks joined the group\n{}\n{}",
        t0.log_tail(),
        t1.log_tail()
    );
    let p = producer(&stack.kafka_bootstrap);
    let total = 2000u64;
    for i in 0..total {
        let r: rdkafka::producer::FutureRecord<'_, str, str> =
            rdkafka::producer::FutureRecord::to(&topic)
                .partition((i % 4) as i32)
                .payload("x");
        p.send(r, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut a, mut b) = (0, 0);
    while a + b < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        a = records_out(&admin0).await;
        b = records_out(&admin1).await;
    }
    assert!(
        a + b >= total,
        "the two tasks wrote {a} + {b} of {total} records\n{}\n{}",
        t0.log_tail(),
        t1.log_tail()
    );
    assert!(a > 0 && b > 0, "both tasks got partitions: {a} / {b}");

    let bootstrap = stack.kafka_bootstrap.clone();
    let group = format!("ferry.e2e.{name}");
    let (members, protocol, committed) = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("client");
        let list = c
            .fetch_group_list(Some(&group), Duration::from_secs(10))
            .expect("group list");
        let g = list.groups().first().expect("the connector's group exists");
        let members: Vec<String> = g.members().iter().map(|m| m.id().to_string()).collect();
        let protocol = g.protocol().to_string();
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", &group)
            .create()
            .expect("reader");
        let mut tpl = TopicPartitionList::new();
        for p in 0..4 {
            tpl.add_partition(&topic, p);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let committed = reader
                .committed_offsets(tpl.clone(), Duration::from_secs(10))
                .expect("committed");
            let all: Vec<Offset> = committed.elements().iter().map(|e| e.offset()).collect();
            if all.iter().all(|o| *o == Offset::Offset(500)) || Instant::now() > deadline {
                return (members, protocol, all);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    })
    .await
    .expect("inspect group");
    assert_eq!(
        committed,
        vec![Offset::Offset(500); 4],
        "every partition is committed up to its end"
    );
    assert_eq!(protocol, "cooperative-sticky");
    assert_eq!(members.len(), 2, "{members:?}");
    for i in 0..2 {
        let prefix = format!("{name}-task-{i}-");
        assert!(
            members.iter().any(|m| m.starts_with(&prefix)),
            "a static member {prefix}*: {members:?}"
        );
    }
    terminate(&t0.child);
    terminate(&t1.child);
    assert!(t0.child.wait().await.expect("exit").success());
    assert!(t1.child.wait().await.expect("exit").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_subscription_reads_every_matching_topic_also_later_ones() {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = unique("rx");
    let first = format!("{prefix}-a");
    let later = format!("{prefix}-b");
    create_topic(&stack.kafka_bootstrap, &first, 1).await;
    create_topic(&stack.kafka_bootstrap, &format!("other-{prefix}"), 1).await;
    let out = dir.path().join("out.txt");
    let file = dir.path().join("connector.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: {prefix}, namespace: e2e}}\nspec:\n  kafka: {{bootstrapServers: \"{}\", config: {{topic.metadata.refresh.interval.ms: \"1000\"}}}}\n  sink: {{topicsRegex: '{prefix}-.*', file: {{path: {}}}}}\n  converters: {{value: {{string: {{}}}}}}\n",
            stack.kafka_bootstrap,
            out.display()
        ),
    )
    .expect("write");
    let mut runner = spawn_runner(&stack, &file, &free_admin_addr(), &[]);
    let p = producer(&stack.kafka_bootstrap);
    produce(&p, &first, None, Some(b"from-a"), &[]).await;
    produce(
        &p,
        &format!("other-{prefix}"),
        None,
        Some(b"not-matching"),
        &[],
    )
    .await;
    create_topic(&stack.kafka_bootstrap, &later, 1).await;
    produce(&p, &later, None, Some(b"from-b"), &[]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = lines(&out);
    while got.len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        got = lines(&out);
    }
    got.sort();
    assert_eq!(got, vec!["from-a", "from-b"], "{}", runner.log_tail());
    terminate(&runner.child);
    assert!(runner.child.wait().await.expect("exit").success());
}

/// A sink applied before its source has written anything subscribes to a topic that does not
/// exist yet; it reads the topic once it appears, within the task's metadata refresh (10 s),
/// not librdkafka's default of 5 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_started_before_its_topic_exists_reads_it_once_created() {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("late");
    let name = unique("late");
    let out = dir.path().join("out.txt");
    let file = dir.path().join("connector.yaml");
    std::fs::write(
        &file,
        file_sink_yaml(
            &name,
            &stack.kafka_bootstrap,
            &topic,
            &out,
            "  converters: {value: {string: {}}}\n",
        ),
    )
    .expect("write");
    let admin = free_admin_addr();
    let mut runner = spawn_runner(&stack, &file, &admin, &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    create_topic(&stack.kafka_bootstrap, &topic, 1).await;
    let p = producer(&stack.kafka_bootstrap);
    for i in 0..20 {
        produce(&p, &topic, None, Some(format!("line {i}").as_bytes()), &[]).await;
    }
    let created = Instant::now();
    while lines(&out).len() < 20 {
        assert!(
            created.elapsed() < Duration::from_secs(45),
            "only {} of 20 records of the late topic reached the file after 45 s\n{}",
            lines(&out).len(),
            runner.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "records of a topic created after the subscription arrived {:.1} s after its creation",
        created.elapsed().as_secs_f64()
    );
    terminate(&runner.child);
    let _ = runner.child.wait().await;
}
