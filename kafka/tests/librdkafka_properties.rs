//! The table of librdkafka properties behind the CRD's rules on `spec.kafka.config`
//! (`ferry_crds::librdkafka`) against the librdkafka this crate links:
//!
//! - the table is what `rd_kafka_conf_properties_show` prints (regenerate it with
//!   `FERRY_WRITE_LIBRDKAFKA_TABLE=1 cargo test -p ferry-kafka --test librdkafka_properties`
//!   after a librdkafka upgrade);
//! - on sample values of every property (bounds, one past them, words, nonsense), admission
//!   (`ferry_crds::admission`, the CRD's own CEL rules) and librdkafka's `rd_kafka_conf_set`
//!   give the same verdict.

use std::ffi::{CStr, CString};
use std::fmt::Write as _;
use std::path::Path;

use ferry_crds::kafka_config_keys::{key_rule, names_a_credential, KeyRule};
use ferry_crds::librdkafka::{PropertyValue, PROPERTIES, VERSION};
use rdkafka::bindings as rd;

/// What `rd_kafka_conf_properties_show` prints.
fn shown() -> String {
    // SAFETY: a temporary file librdkafka writes and this function reads back and closes.
    unsafe {
        let file = libc::tmpfile();
        assert!(!file.is_null(), "tmpfile failed");
        rd::rd_kafka_conf_properties_show(file);
        libc::fflush(file);
        libc::rewind(file);
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = libc::fread(buf.as_mut_ptr().cast(), 1, buf.len(), file);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        libc::fclose(file);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// One row of the printed table: name, range column, type.
fn rows(text: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.splitn(6, '|').collect();
        if cols.len() < 6 {
            continue;
        }
        let name = cols[0].trim();
        if name.is_empty() || name == "Property" || name.starts_with('-') {
            continue;
        }
        let ty = cols[5]
            .rsplit_once("*Type: ")
            .and_then(|(_, t)| t.split_once('*'))
            .map(|(t, _)| t.trim().to_owned())
            .unwrap_or_default();
        if out.iter().any(|(n, _, _)| n == name) {
            continue;
        }
        out.push((name.to_owned(), cols[2].trim().to_owned(), ty));
    }
    out
}

fn rust_value(range: &str, ty: &str) -> String {
    let bounds = || {
        range
            .split_once("..")
            .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
    };
    match ty {
        "integer" => match bounds() {
            Some((min, max)) => format!("PropertyValue::Integer {{ min: {min}, max: {max} }}"),
            None => "PropertyValue::Integer { min: i32::MIN as i64, max: i32::MAX as i64 }".into(),
        },
        "float" => match bounds() {
            Some((min, max)) => {
                let f = |v: String| {
                    if v.contains(['.', 'e']) {
                        v
                    } else {
                        format!("{v}.0")
                    }
                };
                format!(
                    "PropertyValue::Float {{ min: {}, max: {} }}",
                    f(min),
                    f(max)
                )
            }
            None => "PropertyValue::Float { min: f64::MIN, max: f64::MAX }".into(),
        },
        "boolean" => "PropertyValue::Boolean".into(),
        "enum value" => {
            let words: Vec<String> = range
                .split(',')
                .map(|w| format!("{:?}", w.trim()))
                .filter(|w| w != "\"\"")
                .collect();
            format!("PropertyValue::Enum(&[{}])", words.join(", "))
        }
        "see dedicated API" => "PropertyValue::DedicatedApi".into(),
        _ => "PropertyValue::Text".into(),
    }
}

/// What librdkafka says of a property its build lacks, before the reason.
const NOT_IN_THIS_BUILD: &str = "not supported in this build:";

/// The Rust source of `crds/src/librdkafka/properties.rs` for the linked librdkafka.
fn table_source() -> String {
    let (_, version) = rdkafka::util::get_rdkafka_version();
    let mut out = String::new();
    out.push_str(
        "//! Generated from the linked librdkafka's `rd_kafka_conf_properties_show` by\n\
         //! `FERRY_WRITE_LIBRDKAFKA_TABLE=1 cargo test -p ferry-kafka --test librdkafka_properties`.\n\
         //! Do not edit.\n\n\
         use super::{Property, PropertyValue};\n\n",
    );
    let _ = writeln!(out, "/// The librdkafka version the table was read from.");
    let _ = writeln!(out, "pub const VERSION: &str = {version:?};\n");
    let _ = writeln!(
        out,
        "/// Every global and topic property, in librdkafka's order."
    );
    out.push_str("pub const PROPERTIES: &[Property] = &[\n");
    for (name, range, ty) in rows(&shown()) {
        // Shown, but refused by this build whatever the value.
        let value = match librdkafka_verdict(&name, "x") {
            Err(e) if e.contains(NOT_IN_THIS_BUILD) => {
                let why = e
                    .split_once(NOT_IN_THIS_BUILD)
                    .map(|(_, w)| w.trim())
                    .unwrap_or("");
                format!("PropertyValue::NotBuiltIn({why:?})")
            }
            _ => rust_value(&range, &ty),
        };
        let _ = writeln!(out, "    Property {{ name: {name:?}, value: {value} }},");
    }
    out.push_str("];\n");
    out
}

#[test]
fn the_table_is_the_linked_librdkafka_s() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/src/librdkafka/properties.rs");
    let want = table_source();
    if std::env::var_os("FERRY_WRITE_LIBRDKAFKA_TABLE").is_some() {
        std::fs::write(&path, &want).expect("write the table");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    // rustfmt may lay the file out differently; compare without whitespace.
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    assert!(
        squash(&have) == squash(&want),
        "{} is not the table of the linked librdkafka; regenerate it with \
         FERRY_WRITE_LIBRDKAFKA_TABLE=1 cargo test -p ferry-kafka --test librdkafka_properties",
        path.display()
    );
    assert_eq!(VERSION, rdkafka::util::get_rdkafka_version().1);
    assert!(
        PROPERTIES.len() > 150,
        "only {} properties",
        PROPERTIES.len()
    );
}

/// librdkafka's verdict on `name = value`: `Err` with its message when it refuses.
fn librdkafka_verdict(name: &str, value: &str) -> Result<(), String> {
    let name = CString::new(name).map_err(|e| e.to_string())?;
    let value = CString::new(value).map_err(|e| e.to_string())?;
    let mut errstr = [0 as libc::c_char; 512];
    // SAFETY: a configuration object made, used and destroyed here, with NUL-terminated
    // strings and an error buffer of the length given.
    unsafe {
        let conf = rd::rd_kafka_conf_new();
        let result = rd::rd_kafka_conf_set(
            conf,
            name.as_ptr(),
            value.as_ptr(),
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        rd::rd_kafka_conf_destroy(conf);
        if result == rd::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK {
            Ok(())
        } else {
            Err(CStr::from_ptr(errstr.as_ptr())
                .to_string_lossy()
                .into_owned())
        }
    }
}

/// Admission's verdict on a connector with `spec.kafka.config: {name: value}`.
fn admission_verdict(name: &str, value: &str) -> Result<(), String> {
    let object = serde_json::json!({
        "apiVersion": "ferry.rs/v1alpha1", "kind": "KafkaConnector",
        "metadata": {"name": "sample"},
        "spec": {
            "kafka": {"bootstrapServers": "kafka:9092", "config": {name: value}},
            "sink": {"topics": ["t"], "discard": {}},
        },
    });
    ferry_crds::admission::admit(&object)
        .map(|_| ())
        .map_err(|v| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
}

fn samples(value: &PropertyValue) -> Vec<String> {
    let mut out: Vec<String> = vec!["nonsense".into(), String::new()];
    match value {
        PropertyValue::Integer { min, max } => {
            for v in [*min, *max, (min + max) / 2] {
                out.push(v.to_string());
            }
            if *min > i64::from(i32::MIN) {
                out.push((min - 1).to_string());
            }
            if *max < i64::from(i32::MAX) {
                out.push((max + 1).to_string());
            }
        }
        PropertyValue::Float { min, max } => {
            for v in [*min, *max, (min + max) / 2.0, min - 1.0, max + 1.0] {
                out.push(v.to_string());
            }
        }
        PropertyValue::Boolean => {
            for v in ["true", "false", "True", "0", "1", "yes"] {
                out.push(v.into());
            }
        }
        PropertyValue::Enum(words) => {
            for w in *words {
                out.push((*w).to_owned());
                out.push(w.to_ascii_uppercase());
            }
        }
        PropertyValue::Text | PropertyValue::DedicatedApi | PropertyValue::NotBuiltIn(_) => {
            out.push("x".into());
        }
    }
    out
}

#[test]
fn admission_and_librdkafka_agree_on_every_property() {
    let mut disagreements = Vec::new();
    let mut compared = 0;
    for property in PROPERTIES {
        // Keys the table of spec.kafka.config keys refuses or maps have their own rules.
        if !matches!(key_rule(property.name), KeyRule::Pass) || names_a_credential(property.name) {
            continue;
        }
        // Free text: librdkafka checks some of it only when a client starts.
        if property.value == PropertyValue::Text {
            continue;
        }
        for value in samples(&property.value) {
            let ours = admission_verdict(property.name, &value);
            let theirs = librdkafka_verdict(property.name, &value);
            compared += 1;
            if ours.is_ok() != theirs.is_ok() {
                disagreements.push(format!(
                    "{} = {value:?}: admission {ours:?}, librdkafka {theirs:?}",
                    property.name
                ));
            }
        }
    }
    assert!(compared > 300, "only {compared} samples compared");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[test]
fn names_librdkafka_does_not_know_are_refused_at_admission() {
    assert!(librdkafka_verdict("linger.mss", "5").is_err());
    let refused = admission_verdict("linger.mss", "5").unwrap_err();
    assert!(
        refused.contains("spec.kafka.config[\"linger.mss\"] is not a librdkafka property"),
        "{refused}"
    );
    // Java client keys Ferry maps are not librdkafka's, and are admitted.
    assert!(admission_verdict("max.request.size", "2000000").is_ok());
}
