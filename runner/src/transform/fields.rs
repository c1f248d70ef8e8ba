//! Transforms that reshape structs and maps: `ExtractField`, `Flatten`, `HoistField`,
//! `InsertField`, `MaskField`, `ReplaceField`, `SetSchemaMetadata`, `ValueToKey`.

use super::{
    field_value, map_entry, map_put, not_a_map, not_a_struct, operating, push_field, require_names,
    struct_with_basics, Failure,
};
use crate::config_error::ConfigError;
use crate::data::{Decimal, LogicalType, Schema, SchemaAndValue, SchemaType, Value};
use crate::record::Record;
use ferry_crds::pipeline::{
    ExtractFieldSpec, FieldSyntaxVersion, FlattenSpec, HoistFieldSpec, InsertFieldSpec,
    MaskFieldSpec, ReplaceFieldSpec, SetSchemaMetadataSpec, Target, ValueToKeySpec,
};

fn require_name(name: &str, path: &str, errors: &mut Vec<ConfigError>) -> bool {
    if name.is_empty() {
        errors.push(ConfigError::new(path, "must not be empty"));
        return false;
    }
    true
}

/// `ExtractField`.
#[derive(Clone, Debug)]
pub(crate) struct ExtractField {
    target: Target,
    field: String,
    steps: Vec<String>,
    replace_null_with_default: bool,
}

/// Splits a `field.syntax.version: V2` path: dots separate names, a name in backticks may
/// contain dots, and `` \` `` inside backticks is a backtick.
pub(crate) fn parse_field_path(path: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = path.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    loop {
        let mut step = String::new();
        if chars.get(i) == Some(&'`') {
            let open = i;
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(format!(
                            "the backtick at position {open} of {path:?} is never closed"
                        ))
                    }
                    Some('\\') if chars.get(i + 1) == Some(&'`') => {
                        step.push('`');
                        i += 2;
                    }
                    Some('`') if matches!(chars.get(i + 1), None | Some('.')) => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        step.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while let Some(c) = chars.get(i) {
                if *c == '.' {
                    break;
                }
                step.push(*c);
                i += 1;
            }
        }
        if step.is_empty() {
            return Err(format!("{path:?} has an empty field name"));
        }
        steps.push(step);
        match chars.get(i) {
            None => return Ok(steps),
            Some(_) => i += 1,
        }
    }
}

impl ExtractField {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(
        spec: &ExtractFieldSpec,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        if !require_name(&spec.field, &format!("{path}.field"), errors) {
            return None;
        }
        let steps = match spec.field_syntax_version.unwrap_or_default() {
            FieldSyntaxVersion::V1 => vec![spec.field.clone()],
            FieldSyntaxVersion::V2 => match parse_field_path(&spec.field) {
                Ok(steps) => steps,
                Err(e) => {
                    errors.push(ConfigError::new(format!("{path}.field"), e));
                    return None;
                }
            },
        };
        Some(ExtractField {
            target: spec.target,
            field: spec.field.clone(),
            steps,
            replace_null_with_default: spec.replace_null_with_default.unwrap_or(true),
        })
    }

    /// Applies the transform to one record.
    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let purpose = "field extraction";
        let part = operating(&mut record, self.target);
        match &part.schema {
            None => {
                let mut value = match &part.value {
                    Value::Null => Value::Null,
                    v @ Value::Map(_) => v.clone(),
                    other => return Err(not_a_map(other, purpose)),
                };
                for step in &self.steps {
                    value = match &value {
                        Value::Null => Value::Null,
                        Value::Map(_) => value.map_get(step).cloned().unwrap_or(Value::Null),
                        other => {
                            return Err(format!(
                                "cannot read field {step:?} of {:?}: only maps are supported in \
                                 nested field access of schemaless data, found {}",
                                self.field,
                                other.type_name()
                            ))
                        }
                    };
                }
                *part = SchemaAndValue::schemaless(value);
            }
            Some(schema) => {
                if !matches!(part.value, Value::Null | Value::Struct(_)) {
                    return Err(not_a_struct(schema, &part.value, purpose));
                }
                let mut current_schema: &Schema = schema;
                let mut value = part.value.clone();
                for step in &self.steps {
                    let found = if current_schema.schema_type == SchemaType::Struct {
                        current_schema.field(step)
                    } else {
                        None
                    };
                    let Some((index, field)) = found else {
                        return Err(format!("unknown field {:?}", self.field));
                    };
                    value = match &value {
                        Value::Struct(values) => field_value(
                            current_schema,
                            values,
                            index,
                            self.replace_null_with_default,
                        ),
                        _ => Value::Null,
                    };
                    current_schema = &field.schema;
                }
                *part = SchemaAndValue::new(current_schema.clone(), value);
            }
        }
        Ok(record)
    }
}

/// `Flatten`.
#[derive(Clone, Debug)]
pub(crate) struct Flatten {
    target: Target,
    delimiter: String,
}

impl Flatten {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(spec: &FlattenSpec) -> Self {
        Flatten {
            target: spec.target,
            delimiter: spec.delimiter.clone().unwrap_or_else(|| ".".to_string()),
        }
    }

    fn name(&self, prefix: &str, name: &str) -> String {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}{}{name}", self.delimiter)
        }
    }

    /// Applies the transform to one record.
    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let purpose = "flattening";
        let part = operating(&mut record, self.target);
        match part.schema.take() {
            None => {
                match &part.value {
                    Value::Null => {}
                    Value::Map(entries) => {
                        let mut out = Vec::new();
                        self.flatten_map(entries, "", &mut out)?;
                        part.value = Value::Map(out);
                    }
                    other => return Err(not_a_map(other, purpose)),
                }
                Ok(record)
            }
            Some(schema) => {
                if !matches!(part.value, Value::Null | Value::Struct(_))
                    || schema.schema_type != SchemaType::Struct
                {
                    let err = not_a_struct(&schema, &part.value, purpose);
                    part.schema = Some(schema);
                    return Err(err);
                }
                let mut updated = struct_with_basics(&schema);
                let default = match schema.default.as_deref() {
                    Some(Value::Struct(d)) => Some(d.as_slice()),
                    _ => None,
                };
                self.flatten_schema(&schema, "", &mut updated, schema.optional, default)?;
                if let Value::Struct(values) = &part.value {
                    let mut out = Vec::with_capacity(updated.fields.len());
                    self.flatten_struct(&schema, Some(values), &mut out);
                    part.value = Value::Struct(out);
                }
                part.schema = Some(updated.into());
                Ok(record)
            }
        }
    }

    fn flatten_map(
        &self,
        entries: &[(Value, Value)],
        prefix: &str,
        out: &mut Vec<(Value, Value)>,
    ) -> Result<(), Failure> {
        for (k, v) in entries {
            let Value::String(key) = k else {
                return Err(format!(
                    "flattening needs string map keys, found a {} key",
                    k.type_name()
                ));
            };
            let name = self.name(prefix, key);
            match v {
                Value::Map(inner) => self.flatten_map(inner, &name, out)?,
                Value::Null
                | Value::Int8(_)
                | Value::Int16(_)
                | Value::Int32(_)
                | Value::Int64(_)
                | Value::Float32(_)
                | Value::Float64(_)
                | Value::Boolean(_)
                | Value::String(_)
                | Value::Bytes(_)
                | Value::Array(_) => map_put(out, &name, v.clone()),
                other => {
                    return Err(format!(
                        "flattening does not support {} values without a schema (field {name:?})",
                        other.type_name()
                    ))
                }
            }
        }
        Ok(())
    }

    fn flatten_schema(
        &self,
        schema: &Schema,
        prefix: &str,
        out: &mut Schema,
        optional: bool,
        parent_default: Option<&[Value]>,
    ) -> Result<(), Failure> {
        for (i, field) in schema.fields.iter().enumerate() {
            let name = self.name(prefix, &field.name);
            let field_optional = optional || field.schema.optional;
            let default = field
                .schema
                .default
                .as_deref()
                .cloned()
                .or_else(|| parent_default.and_then(|d| d.get(i).cloned()))
                .filter(|v| !v.is_null());
            if field.schema.schema_type == SchemaType::Map {
                return Err(format!(
                    "flattening does not support map fields in records with schemas (field {name:?})"
                ));
            }
            if field.schema.schema_type == SchemaType::Struct {
                let inner_default = match &default {
                    Some(Value::Struct(d)) => Some(d.as_slice()),
                    _ => None,
                };
                self.flatten_schema(&field.schema, &name, out, field_optional, inner_default)?;
            } else {
                let mut s = field.schema.clone();
                s.optional = field_optional;
                s.default = default.map(Box::new);
                push_field(out, &name, s)?;
            }
        }
        Ok(())
    }

    fn flatten_struct(&self, schema: &Schema, values: Option<&[Value]>, out: &mut Vec<Value>) {
        for (i, field) in schema.fields.iter().enumerate() {
            let v = match values {
                Some(values) => field_value(schema, values, i, true),
                None => Value::Null,
            };
            if field.schema.schema_type == SchemaType::Struct {
                match &v {
                    Value::Struct(inner) => self.flatten_struct(&field.schema, Some(inner), out),
                    _ => self.flatten_struct(&field.schema, None, out),
                }
            } else {
                out.push(v);
            }
        }
    }
}

/// `HoistField`.
#[derive(Clone, Debug)]
pub(crate) struct HoistField {
    target: Target,
    field: String,
}

impl HoistField {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(
        spec: &HoistFieldSpec,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        require_name(&spec.field, &format!("{path}.field"), errors).then(|| HoistField {
            target: spec.target,
            field: spec.field.clone(),
        })
    }

    /// Applies the transform to one record.
    pub(crate) fn apply(&self, mut record: Record) -> Record {
        let part = operating(&mut record, self.target);
        let value = std::mem::replace(&mut part.value, Value::Null);
        match part.schema.take() {
            None => {
                part.value = Value::Map(vec![(Value::String(self.field.clone()), value)]);
            }
            Some(schema) => {
                part.schema = Some(
                    Schema::structure(vec![(self.field.as_str(), schema.into_owned())]).into(),
                );
                part.value = Value::Struct(vec![value]);
            }
        }
        record
    }
}

/// `InsertField`.
#[derive(Clone, Debug)]
pub(crate) struct InsertField {
    target: Target,
    topic: Option<(String, bool)>,
    partition: Option<(String, bool)>,
    offset: Option<(String, bool)>,
    timestamp: Option<(String, bool)>,
    static_field: Option<(String, bool, String)>,
    replace_null_with_default: bool,
}

impl InsertField {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(
        spec: &InsertFieldSpec,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        let mut ok = true;
        let mut check = |name: &str, sub: &str| {
            ok &= require_name(name, &format!("{path}.{sub}.field"), errors);
        };
        for (f, sub) in [
            (&spec.topic, "topic"),
            (&spec.partition, "partition"),
            (&spec.offset, "offset"),
            (&spec.timestamp, "timestamp"),
        ] {
            if let Some(f) = f {
                check(&f.field, sub);
            }
        }
        if let Some(s) = &spec.r#static {
            check(&s.field, "static");
        }
        let none = spec.topic.is_none()
            && spec.partition.is_none()
            && spec.offset.is_none()
            && spec.timestamp.is_none()
            && spec.r#static.is_none();
        if none {
            errors.push(ConfigError::new(
                path,
                "needs at least one of topic, partition, offset, timestamp, static",
            ));
            return None;
        }
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for (name, sub) in [
            (spec.topic.as_ref().map(|f| f.field.as_str()), "topic"),
            (
                spec.partition.as_ref().map(|f| f.field.as_str()),
                "partition",
            ),
            (spec.offset.as_ref().map(|f| f.field.as_str()), "offset"),
            (
                spec.timestamp.as_ref().map(|f| f.field.as_str()),
                "timestamp",
            ),
            (spec.r#static.as_ref().map(|f| f.field.as_str()), "static"),
        ] {
            let Some(name) = name else { continue };
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
                errors.push(ConfigError::new(
                    format!("{path}.{sub}.field"),
                    format!("field {name:?} is already inserted by {first}"),
                ));
                ok = false;
            }
            seen.push((name, sub));
        }
        let named = |f: &Option<ferry_crds::pipeline::InsertedField>| {
            f.as_ref().map(|f| (f.field.clone(), !f.required))
        };
        ok.then(|| InsertField {
            target: spec.target,
            topic: named(&spec.topic),
            partition: named(&spec.partition),
            offset: named(&spec.offset),
            timestamp: named(&spec.timestamp),
            static_field: spec
                .r#static
                .as_ref()
                .map(|s| (s.field.clone(), !s.required, s.value.clone())),
            replace_null_with_default: spec.replace_null_with_default.unwrap_or(true),
        })
    }

    /// Applies the transform to one record.
    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let purpose = "field insertion";
        let topic = record.topic.clone();
        let partition = record.partition;
        let offset = record.offset;
        let timestamp = record.timestamp;
        if self.offset.is_some() && offset.is_none() {
            return Err(
                "offset insertion needs the record's Kafka offset, which only sink connectors have"
                    .to_string(),
            );
        }
        let part = operating(&mut record, self.target);
        if part.value.is_null() {
            return Ok(record);
        }
        match &part.schema {
            None => {
                let Value::Map(entries) = &mut part.value else {
                    return Err(not_a_map(&part.value, purpose));
                };
                if let Some((name, _)) = &self.topic {
                    map_put(entries, name, Value::String(topic));
                }
                if let (Some((name, _)), Some(p)) = (&self.partition, partition) {
                    map_put(entries, name, Value::Int32(p));
                }
                if let (Some((name, _)), Some(o)) = (&self.offset, offset) {
                    map_put(entries, name, Value::Int64(o));
                }
                if let (Some((name, _)), Some(t)) = (&self.timestamp, timestamp) {
                    map_put(entries, name, Value::Int64(t));
                }
                if let Some((name, _, value)) = &self.static_field {
                    map_put(entries, name, Value::String(value.clone()));
                }
                Ok(record)
            }
            Some(schema) => {
                let Value::Struct(values) = &part.value else {
                    return Err(not_a_struct(schema, &part.value, purpose));
                };
                let mut updated = struct_with_basics(schema);
                let mut new_values = Vec::with_capacity(values.len() + 5);
                for (i, field) in schema.fields.iter().enumerate() {
                    updated.fields.push(field.clone());
                    new_values.push(field_value(
                        schema,
                        values,
                        i,
                        self.replace_null_with_default,
                    ));
                }
                let optional = |s: Schema, opt: bool| if opt { s.into_optional() } else { s };
                if let Some((name, opt)) = &self.topic {
                    push_field(
                        &mut updated,
                        name,
                        optional(Schema::new(SchemaType::String), *opt),
                    )?;
                    new_values.push(Value::String(topic));
                }
                if let Some((name, opt)) = &self.partition {
                    push_field(
                        &mut updated,
                        name,
                        optional(Schema::new(SchemaType::Int32), *opt),
                    )?;
                    new_values.push(partition.map_or(Value::Null, Value::Int32));
                }
                if let Some((name, opt)) = &self.offset {
                    push_field(
                        &mut updated,
                        name,
                        optional(Schema::new(SchemaType::Int64), *opt),
                    )?;
                    new_values.push(offset.map_or(Value::Null, Value::Int64));
                }
                if let Some((name, opt)) = &self.timestamp {
                    push_field(&mut updated, name, optional(Schema::timestamp(), *opt))?;
                    new_values.push(timestamp.map_or(Value::Null, Value::Timestamp));
                }
                if let Some((name, opt, value)) = &self.static_field {
                    push_field(
                        &mut updated,
                        name,
                        optional(Schema::new(SchemaType::String), *opt),
                    )?;
                    new_values.push(Value::String(value.clone()));
                }
                updated.optional = false;
                part.schema = Some(updated.into());
                part.value = Value::Struct(new_values);
                Ok(record)
            }
        }
    }
}

/// `MaskField`.
#[derive(Clone, Debug)]
pub(crate) struct MaskField {
    target: Target,
    fields: Vec<String>,
    replacement: Option<String>,
}

impl MaskField {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(
        spec: &MaskFieldSpec,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        if !require_names(&spec.fields, &format!("{path}.fields"), errors) {
            return None;
        }
        if spec.replacement.as_deref() == Some("") {
            errors.push(ConfigError::new(
                format!("{path}.replacement"),
                "must not be empty (omit it to mask with empty values)",
            ));
            return None;
        }
        Some(MaskField {
            target: spec.target,
            fields: spec.fields.clone(),
            replacement: spec.replacement.clone(),
        })
    }

    fn masked(&self, schema: Option<&Schema>, value: &Value) -> Result<Value, Failure> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let logical = schema.and_then(Schema::logical_type);
        match &self.replacement {
            None => Ok(match value {
                Value::Boolean(_) => Value::Boolean(false),
                Value::Int8(_) => Value::Int8(0),
                Value::Int16(_) => Value::Int16(0),
                Value::Int32(_) => Value::Int32(0),
                Value::Int64(_) => Value::Int64(0),
                Value::Float32(_) => Value::Float32(0.0),
                Value::Float64(_) => Value::Float64(0.0),
                Value::Decimal(_) => Value::Decimal(Decimal::from_i64(0, 0)),
                Value::Date(_) => Value::Date(0),
                Value::Time(_) => Value::Time(0),
                Value::Timestamp(_) => Value::Timestamp(0),
                Value::String(_) => Value::String(String::new()),
                Value::Array(_) => Value::Array(Vec::new()),
                Value::Map(_) => Value::Map(Vec::new()),
                other => return Err(format!("cannot mask a {} value", other.type_name())),
            }),
            Some(r) => {
                let bad_number = || {
                    format!(
                        "cannot mask a {} value with {r:?}: not a number",
                        value.type_name()
                    )
                };
                Ok(match value {
                    Value::Int8(_) => Value::Int8(r.parse().map_err(|_| bad_number())?),
                    Value::Int16(_) => Value::Int16(r.parse().map_err(|_| bad_number())?),
                    Value::Int32(_) => Value::Int32(r.parse().map_err(|_| bad_number())?),
                    Value::Int64(_) => Value::Int64(r.parse().map_err(|_| bad_number())?),
                    Value::Float32(_) => {
                        Value::Float32(r.trim().parse().map_err(|_| bad_number())?)
                    }
                    Value::Float64(_) => {
                        Value::Float64(r.trim().parse().map_err(|_| bad_number())?)
                    }
                    Value::Decimal(_)
                        if logical == Some(LogicalType::Decimal) || schema.is_none() =>
                    {
                        Value::Decimal(Decimal::parse(r).map_err(|_| bad_number())?)
                    }
                    Value::String(_) => Value::String(r.clone()),
                    other => {
                        return Err(format!(
                            "cannot mask a {} value with a replacement",
                            other.type_name()
                        ))
                    }
                })
            }
        }
    }

    /// Applies the transform to one record.
    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let purpose = "masking fields";
        let part = operating(&mut record, self.target);
        match &part.schema {
            None => {
                let Value::Map(entries) = &mut part.value else {
                    return Err(not_a_map(&part.value, purpose));
                };
                for name in &self.fields {
                    let masked =
                        self.masked(None, map_entry(entries, name).unwrap_or(&Value::Null))?;
                    map_put(entries, name, masked);
                }
            }
            Some(schema) => {
                let Value::Struct(values) = &part.value else {
                    return Err(not_a_struct(schema, &part.value, purpose));
                };
                let mut out = Vec::with_capacity(values.len());
                for (i, field) in schema.fields.iter().enumerate() {
                    let v = field_value(schema, values, i, true);
                    if self.fields.contains(&field.name) {
                        out.push(
                            self.masked(Some(&field.schema), &v)
                                .map_err(|e| format!("field {:?}: {e}", field.name))?,
                        );
                    } else {
                        out.push(v);
                    }
                }
                part.value = Value::Struct(out);
            }
        }
        Ok(record)
    }
}

/// `ReplaceField`.
#[derive(Clone, Debug)]
pub(crate) struct ReplaceField {
    target: Target,
    exclude: Vec<String>,
    include: Vec<String>,
    renames: Vec<(String, String)>,
    replace_null_with_default: bool,
}

impl ReplaceField {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(
        spec: &ReplaceFieldSpec,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        let before = errors.len();
        if spec.exclude.is_empty() && spec.include.is_empty() && spec.renames.is_empty() {
            errors.push(ConfigError::new(
                path,
                "needs at least one of exclude, include, renames",
            ));
        }
        for (i, r) in spec.renames.iter().enumerate() {
            if r.from.is_empty() || r.to.is_empty() {
                errors.push(ConfigError::new(
                    format!("{path}.renames[{i}]"),
                    "from and to must not be empty",
                ));
            }
            if spec.renames[..i].iter().any(|p| p.from == r.from) {
                errors.push(ConfigError::new(
                    format!("{path}.renames[{i}].from"),
                    format!("field {:?} is renamed twice", r.from),
                ));
            }
        }
        (errors.len() == before).then(|| ReplaceField {
            target: spec.target,
            exclude: spec.exclude.clone(),
            include: spec.include.clone(),
            renames: spec
                .renames
                .iter()
                .map(|r| (r.from.clone(), r.to.clone()))
                .collect(),
            replace_null_with_default: spec.replace_null_with_default.unwrap_or(true),
        })
    }

    fn keep(&self, name: &str) -> bool {
        !self.exclude.iter().any(|e| e == name)
            && (self.include.is_empty() || self.include.iter().any(|i| i == name))
    }

    fn renamed<'a>(&'a self, name: &'a str) -> &'a str {
        self.renames
            .iter()
            .find(|(from, _)| from == name)
            .map_or(name, |(_, to)| to.as_str())
    }

    /// Applies the transform to one record.
    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let purpose = "field replacement";
        let part = operating(&mut record, self.target);
        if part.value.is_null() {
            return Ok(record);
        }
        match &part.schema {
            None => {
                let Value::Map(entries) = &part.value else {
                    return Err(not_a_map(&part.value, purpose));
                };
                let mut out = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let Value::String(name) = k else {
                        return Err(format!(
                            "field replacement needs string map keys, found a {} key",
                            k.type_name()
                        ));
                    };
                    if self.keep(name) {
                        map_put(&mut out, self.renamed(name), v.clone());
                    }
                }
                part.value = Value::Map(out);
            }
            Some(schema) => {
                let Value::Struct(values) = &part.value else {
                    return Err(not_a_struct(schema, &part.value, purpose));
                };
                let mut updated = struct_with_basics(schema);
                updated.optional = schema.optional;
                let mut out = Vec::new();
                for (i, field) in schema.fields.iter().enumerate() {
                    if self.keep(&field.name) {
                        push_field(
                            &mut updated,
                            self.renamed(&field.name),
                            field.schema.clone(),
                        )?;
                        out.push(field_value(
                            schema,
                            values,
                            i,
                            self.replace_null_with_default,
                        ));
                    }
                }
                part.schema = Some(updated.into());
                part.value = Value::Struct(out);
            }
        }
        Ok(record)
    }
}

/// `SetSchemaMetadata`.
#[derive(Clone, Debug)]
pub(crate) struct SetSchemaMetadata {
    target: Target,
    name: Option<String>,
    version: Option<i32>,
    replace_null_with_default: bool,
}

impl SetSchemaMetadata {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(
        spec: &SetSchemaMetadataSpec,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        if spec.name.is_none() && spec.version.is_none() {
            errors.push(ConfigError::new(path, "needs a name, a version, or both"));
            return None;
        }
        Some(SetSchemaMetadata {
            target: spec.target,
            name: spec.name.clone(),
            version: spec.version,
            replace_null_with_default: spec.replace_null_with_default.unwrap_or(true),
        })
    }

    /// Applies the transform to one record.
    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let part = operating(&mut record, self.target);
        if part.schema.is_none() && part.value.is_null() {
            return Ok(record);
        }
        let Some(schema) = &mut part.schema else {
            return Err("setting schema metadata needs a schema; this record has none".to_string());
        };
        if schema.schema_type != SchemaType::Struct {
            // Kafka Connect fails the same way (it lists the fields of any schema).
            return Err(format!(
                "setting schema metadata works on struct schemas only, found {}",
                schema.describe()
            ));
        }
        if let Some(name) = &self.name {
            schema.name = Some(name.clone());
        }
        if let Some(version) = self.version {
            schema.version = Some(version);
        }
        if let Value::Struct(values) = &part.value {
            let values: Vec<Value> = (0..values.len())
                .map(|i| field_value(schema, values, i, self.replace_null_with_default))
                .collect();
            part.value = Value::Struct(values);
        }
        Ok(record)
    }
}

/// `ValueToKey`.
#[derive(Clone, Debug)]
pub(crate) struct ValueToKey {
    fields: Vec<String>,
    replace_null_with_default: bool,
}

impl ValueToKey {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(
        spec: &ValueToKeySpec,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        require_names(&spec.fields, &format!("{path}.fields"), errors).then(|| ValueToKey {
            fields: spec.fields.clone(),
            replace_null_with_default: spec.replace_null_with_default.unwrap_or(true),
        })
    }

    /// Applies the transform to one record.
    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let purpose = "copying fields from value to key";
        match &record.value.schema {
            None => {
                if !matches!(record.value.value, Value::Map(_)) {
                    return Err(not_a_map(&record.value.value, purpose));
                }
                let mut key = Vec::with_capacity(self.fields.len());
                for name in &self.fields {
                    let v = record
                        .value
                        .value
                        .map_get(name)
                        .cloned()
                        .unwrap_or(Value::Null);
                    map_put(&mut key, name, v);
                }
                record.key = SchemaAndValue::schemaless(Value::Map(key));
            }
            Some(schema) => {
                let Value::Struct(values) = &record.value.value else {
                    return Err(not_a_struct(schema, &record.value.value, purpose));
                };
                let mut key_schema = Schema::new(SchemaType::Struct);
                let mut key = Vec::with_capacity(self.fields.len());
                for name in &self.fields {
                    let Some((i, field)) = schema.field(name) else {
                        return Err(format!("field {name:?} does not exist in the value"));
                    };
                    push_field(&mut key_schema, name, field.schema.clone())?;
                    key.push(field_value(
                        schema,
                        values,
                        i,
                        self.replace_null_with_default,
                    ));
                }
                record.key = SchemaAndValue::new(key_schema, Value::Struct(key));
            }
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn order_schema() -> Schema {
        Schema::structure(vec![
            ("id", Schema::new(SchemaType::Int64)),
            (
                "customer",
                Schema::structure(vec![
                    ("name", Schema::new(SchemaType::String)),
                    ("vip", Schema::new(SchemaType::Boolean).into_optional()),
                ])
                .into_optional(),
            ),
            (
                "note",
                Schema::new(SchemaType::String)
                    .into_optional()
                    .with_default(Value::String("none".into())),
            ),
        ])
        .with_name("shop.Order")
    }

    fn order() -> SchemaAndValue {
        SchemaAndValue::new(
            order_schema(),
            Value::Struct(vec![
                Value::Int64(7),
                Value::Struct(vec![Value::String("ann".into()), Value::Null]),
                Value::Null,
            ]),
        )
    }

    #[test]
    fn extract_field_both_modes() {
        let c = chain("[{name: e, extractField: {field: id}}]");
        let out = c.apply(record("t", order())).unwrap().unwrap();
        assert_eq!(
            out.value,
            SchemaAndValue::new(Schema::new(SchemaType::Int64), Value::Int64(7))
        );
        let note = chain("[{name: e, extractField: {field: note}}]");
        let out = note.apply(record("t", order())).unwrap().unwrap();
        assert_eq!(out.value.value, Value::String("none".into()));
        let raw = chain("[{name: e, extractField: {field: note, replaceNullWithDefault: false}}]");
        assert_eq!(
            raw.apply(record("t", order()))
                .unwrap()
                .unwrap()
                .value
                .value,
            Value::Null
        );
        let schemaless = SchemaAndValue::schemaless(map(&[("id", Value::Int64(1))]));
        let out = c.apply(record("t", schemaless)).unwrap().unwrap();
        assert_eq!(out.value, SchemaAndValue::schemaless(Value::Int64(1)));
        let missing = chain("[{name: e, extractField: {field: nope}}]");
        assert!(missing.apply(record("t", order())).is_err());
        assert!(c
            .apply(record("t", SchemaAndValue::null()))
            .unwrap()
            .is_some());
    }

    #[test]
    fn extract_nested_fields_with_v2_paths() {
        let c = chain("[{name: e, extractField: {field: customer.name, fieldSyntaxVersion: V2}}]");
        let out = c.apply(record("t", order())).unwrap().unwrap();
        assert_eq!(out.value.value, Value::String("ann".into()));
        let v1 = chain("[{name: e, extractField: {field: customer.name}}]");
        assert!(
            v1.apply(record("t", order())).is_err(),
            "V1 reads one top-level name"
        );
        let value = map(&[("a.b", map(&[("c", Value::Int64(1))]))]);
        let quoted = chain("[{name: e, extractField: {field: '`a.b`.c', fieldSyntaxVersion: V2}}]");
        let out = quoted
            .apply(record("t", SchemaAndValue::schemaless(value)))
            .unwrap()
            .unwrap();
        assert_eq!(out.value.value, Value::Int64(1));
        assert_eq!(
            parse_field_path("a.`b.c`.d"),
            Ok(vec!["a".into(), "b.c".into(), "d".into()])
        );
        assert_eq!(parse_field_path("`a\\`b`"), Ok(vec!["a`b".into()]));
        assert!(parse_field_path("a..b").is_err());
        assert!(parse_field_path("`a.b").is_err());
        assert!(
            !config_errors("[{name: e, extractField: {field: '`x', fieldSyntaxVersion: V2}}]")
                .is_empty()
        );
    }

    #[test]
    fn flatten_both_modes() {
        let c = chain("[{name: f, flatten: {delimiter: _}}]");
        let out = c.apply(record("t", order())).unwrap().unwrap();
        let schema = out.value.schema.unwrap();
        let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "customer_name", "customer_vip", "note"]);
        assert!(
            schema.fields[1].schema.optional,
            "inherits the parent's optionality"
        );
        assert_eq!(schema.name.as_deref(), Some("shop.Order"));
        assert_eq!(
            out.value.value,
            Value::Struct(vec![
                Value::Int64(7),
                Value::String("ann".into()),
                Value::Null,
                Value::String("none".into())
            ])
        );
        let nested = map(&[
            (
                "a",
                map(&[("b", Value::Int64(1)), ("c", map(&[("d", Value::Null)]))]),
            ),
            ("e", Value::Array(vec![])),
        ]);
        let out = chain("[{name: f, flatten: {}}]")
            .apply(record("t", SchemaAndValue::schemaless(nested)))
            .unwrap()
            .unwrap();
        assert_eq!(
            out.value.value,
            map(&[
                ("a.b", Value::Int64(1)),
                ("a.c.d", Value::Null),
                ("e", Value::Array(vec![]))
            ])
        );
    }

    #[test]
    fn hoist_field_both_modes() {
        let c = chain("[{name: h, hoistField: {target: key, field: k}}]");
        let mut r = record("t", SchemaAndValue::null());
        r.key = SchemaAndValue::new(Schema::new(SchemaType::String), Value::String("x".into()));
        let out = c.apply(r).unwrap().unwrap();
        assert_eq!(
            out.key.schema.as_deref(),
            Some(&Schema::structure(vec![(
                "k",
                Schema::new(SchemaType::String)
            )]))
        );
        assert_eq!(
            out.key.value,
            Value::Struct(vec![Value::String("x".into())])
        );
        let mut r = record("t", SchemaAndValue::null());
        r.key = SchemaAndValue::schemaless(Value::Int64(1));
        assert_eq!(
            c.apply(r).unwrap().unwrap().key.value,
            map(&[("k", Value::Int64(1))])
        );
    }

    #[test]
    fn insert_field_metadata_and_static() {
        let c = chain(
            "[{name: i, insertField: {topic: {field: t}, partition: {field: p}, offset: {field: o, required: true}, timestamp: {field: ts}, static: {field: s, value: shop}}}]",
        );
        let mut r = record("orders", order());
        r.partition = Some(1);
        r.offset = Some(9);
        r.timestamp = Some(1000);
        let out = c.apply(r.clone()).unwrap().unwrap();
        let schema = out.value.schema.unwrap();
        let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "customer", "note", "t", "p", "o", "ts", "s"]);
        assert!(!schema.fields[5].schema.optional);
        assert_eq!(schema.fields[6].schema, Schema::timestamp().into_optional());
        let Value::Struct(values) = out.value.value else {
            panic!()
        };
        assert_eq!(
            values[3..],
            [
                Value::String("orders".into()),
                Value::Int32(1),
                Value::Int64(9),
                Value::Timestamp(1000),
                Value::String("shop".into())
            ]
        );
        r.value = SchemaAndValue::schemaless(map(&[("id", Value::Int64(1))]));
        let out = c.apply(r.clone()).unwrap().unwrap();
        assert_eq!(out.value.value.map_get("ts"), Some(&Value::Int64(1000)));
        r.offset = None;
        assert!(c.apply(r).is_err());
        assert_eq!(
            config_errors("[{name: i, insertField: {topic: {field: x}, static: {field: x, value: v}}}]"),
            vec!["spec.transforms[0].insertField.static.field: field \"x\" is already inserted by topic"]
        );
        let dup = chain("[{name: i, insertField: {static: {field: id, value: x}}}]");
        assert!(dup.apply(record("t", order())).is_err());
    }

    #[test]
    fn mask_field_both_modes() {
        let c = chain("[{name: m, maskField: {fields: [id, note]}}]");
        let out = c.apply(record("t", order())).unwrap().unwrap();
        let Value::Struct(values) = out.value.value else {
            panic!()
        };
        assert_eq!(values[0], Value::Int64(0));
        assert_eq!(values[2], Value::String(String::new()));
        let r = chain("[{name: m, maskField: {fields: [id, name], replacement: '42'}}]");
        let value = map(&[
            ("id", Value::Int32(5)),
            ("name", Value::String("ann".into())),
        ]);
        let out = r
            .apply(record("t", SchemaAndValue::schemaless(value)))
            .unwrap()
            .unwrap();
        assert_eq!(
            out.value.value,
            map(&[
                ("id", Value::Int32(42)),
                ("name", Value::String("42".into()))
            ])
        );
        let bad = chain("[{name: m, maskField: {fields: [id], replacement: x}}]");
        assert!(bad.apply(record("t", order())).is_err());
    }

    #[test]
    fn replace_field_include_exclude_rename() {
        let c = chain(
            "[{name: r, replaceField: {exclude: [note], renames: [{from: id, to: orderId}]}}]",
        );
        let out = c.apply(record("t", order())).unwrap().unwrap();
        let schema = out.value.schema.unwrap();
        let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["orderId", "customer"]);
        let inc = chain("[{name: r, replaceField: {include: [a, b], exclude: [b]}}]");
        let value = map(&[
            ("a", Value::Int64(1)),
            ("b", Value::Int64(2)),
            ("c", Value::Int64(3)),
        ]);
        let out = inc
            .apply(record("t", SchemaAndValue::schemaless(value)))
            .unwrap()
            .unwrap();
        assert_eq!(out.value.value, map(&[("a", Value::Int64(1))]));
        assert_eq!(
            config_errors("[{name: r, replaceField: {}}]"),
            vec![
                "spec.transforms[0].replaceField: needs at least one of exclude, include, renames"
            ]
        );
    }

    #[test]
    fn set_schema_metadata() {
        let c = chain("[{name: s, setSchemaMetadata: {name: shop.V2, version: 2}}]");
        let out = c.apply(record("t", order())).unwrap().unwrap();
        let schema = out.value.schema.unwrap();
        assert_eq!(schema.name.as_deref(), Some("shop.V2"));
        assert_eq!(schema.version, Some(2));
        assert!(c
            .apply(record("t", SchemaAndValue::schemaless(Value::Int64(1))))
            .is_err());
        assert_eq!(
            config_errors("[{name: s, setSchemaMetadata: {}}]"),
            vec!["spec.transforms[0].setSchemaMetadata: needs a name, a version, or both"]
        );
    }

    #[test]
    fn value_to_key_both_modes() {
        let c = chain("[{name: v, valueToKey: {fields: [id]}}]");
        let out = c.apply(record("t", order())).unwrap().unwrap();
        assert_eq!(
            out.key,
            SchemaAndValue::new(
                Schema::structure(vec![("id", Schema::new(SchemaType::Int64))]),
                Value::Struct(vec![Value::Int64(7)])
            )
        );
        let value = map(&[("id", Value::Int64(1)), ("x", Value::Int64(2))]);
        let out = c
            .apply(record("t", SchemaAndValue::schemaless(value)))
            .unwrap()
            .unwrap();
        assert_eq!(out.key.value, map(&[("id", Value::Int64(1))]));
        let missing = chain("[{name: v, valueToKey: {fields: [nope]}}]");
        assert!(missing.apply(record("t", order())).is_err());
        assert!(c.apply(record("t", SchemaAndValue::null())).is_err());
    }
}
