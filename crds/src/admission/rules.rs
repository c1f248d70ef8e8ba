//! The CRD's CEL rules (`x-kubernetes-validations`), evaluated as the API server does: each
//! rule sees its node's value as `self`, field names escaped as Kubernetes escapes them, and a
//! rule that does not hold reports its `messageExpression` (or `message`) under its field.

use std::fmt;
use std::sync::{Arc, OnceLock};

use cel::{Context, Env, Program};
use serde_json::Value;

use super::node::{Node, Type};
use super::structural::{child, index, key};
use super::{Finding, Findings};

/// One `x-kubernetes-validations` entry, compiled when it is first evaluated: a task checks
/// one connector, and most nodes of the schema (with their rules) are not in it.
pub(crate) struct Rule {
    source: String,
    /// The key `k` of a rule `!('k' in self) || ...`: with `k` absent from the map the rule
    /// holds whatever follows, and need not be compiled.
    guard_key: Option<String>,
    program: OnceLock<Result<Program, String>>,
    message: Option<String>,
    message_expression: Option<(String, OnceLock<Result<Program, String>>)>,
    field_path: Option<String>,
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule").field("rule", &self.source).finish()
    }
}

/// The CEL environment of the API server's rules: the standard library and the strings
/// extension (`lowerAscii`, ...).
fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // Declaring the extension's functions cannot clash with the standard library's.
        let _ = env.add_extension(cel::extensions::strings);
        Arc::new(env)
    })
}

/// The `k` of a rule that starts `!('k' in self) || `.
fn guard_key(source: &str) -> Option<&str> {
    let rest = source.strip_prefix("!('")?;
    let (key, rest) = rest.split_once('\'')?;
    rest.starts_with(" in self) || ").then_some(key)
}

fn compile(source: &str) -> Result<Program, String> {
    env().compile(source).map_err(|e| e.to_string())
}

impl Rule {
    /// Reads and compiles one entry of `x-kubernetes-validations`.
    pub(super) fn read(entry: &Value) -> Rule {
        let text = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_owned);
        let source = text("rule").unwrap_or_default();
        Rule {
            program: OnceLock::new(),
            guard_key: guard_key(&source).map(str::to_owned),
            source,
            message: text("message"),
            message_expression: text("messageExpression").map(|e| (e, OnceLock::new())),
            field_path: text("fieldPath"),
        }
    }

    fn program(&self) -> &Result<Program, String> {
        self.program.get_or_init(|| compile(&self.source))
    }

    fn message_program(&self) -> Option<&Result<Program, String>> {
        self.message_expression
            .as_ref()
            .map(|(source, program)| program.get_or_init(|| compile(source)))
    }

    /// The compiled rule, or why it does not compile.
    #[cfg(test)]
    pub(super) fn compiled(&self) -> Result<(), String> {
        self.program().as_ref().map_err(Clone::clone)?;
        match self.message_program() {
            Some(Err(e)) => Err(format!("messageExpression: {e}")),
            _ => Ok(()),
        }
    }

    /// The rule's problem with `value` (at `path`, of type `ty`), if it does not hold.
    fn check(&self, value: &cel::Value, ty: &str, path: &str) -> Option<Finding> {
        if let (Some(key), cel::Value::Map(map)) = (&self.guard_key, value) {
            if !map
                .map
                .contains_key(&cel::objects::Key::String(Arc::new(key.clone())))
            {
                return None;
            }
        }
        let field = match &self.field_path {
            Some(relative) => relative
                .trim_start_matches('.')
                .split('.')
                .fold(path.to_owned(), |p, name| child(&p, name)),
            None => path.to_owned(),
        };
        let outcome = match self.program() {
            Ok(program) => run(program, value),
            Err(e) => Err(format!("compilation failed: {e}")),
        };
        let message = match outcome {
            Ok(cel::Value::Bool(true)) => return None,
            Ok(cel::Value::Bool(false)) => self.message_for(value),
            Ok(other) => format!(
                "rule evaluated to {other:?}, not a boolean, evaluating rule: {}",
                self.source
            ),
            Err(e) => format!("{e} evaluating rule: {}", self.source),
        };
        Some(Finding::new(
            field,
            format!("Invalid value: {ty:?}: {message}"),
        ))
    }

    fn message_for(&self, value: &cel::Value) -> String {
        if let Some(Ok(program)) = self.message_program() {
            if let Ok(cel::Value::String(text)) = run(program, value) {
                if !text.trim().is_empty() && !text.contains('\n') {
                    return text.to_string();
                }
            }
        }
        match &self.message {
            Some(message) => message.clone(),
            None => format!("failed rule: {}", self.source),
        }
    }
}

fn run(program: &Program, value: &cel::Value) -> Result<cel::Value, String> {
    let mut context = Context::with_env(env().clone());
    context.add_variable_from_value("self", value.clone());
    program.execute(&context).map_err(|e| e.to_string())
}

/// Evaluates every rule of `node` and of the nodes below it on `value`.
pub(super) fn evaluate(node: &Node, value: &Value, path: &str, out: &mut Findings) {
    if value.is_null() {
        return;
    }
    if !node.rules.is_empty() {
        let cel_value = to_cel(node, value);
        let ty = node.ty.map(Type::name).unwrap_or("object");
        out.extend(
            node.rules
                .iter()
                .filter_map(|r| r.check(&cel_value, ty, path)),
        );
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if let Some(sub) = node.properties.get(k) {
                    evaluate(sub, v, &child(path, k), out);
                } else if let Some(sub) = node.child(k) {
                    evaluate(sub, v, &key(path, k), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = &node.items {
                for (i, item) in items.iter().enumerate() {
                    evaluate(sub, item, &index(path, i), out);
                }
            }
        }
        _ => {}
    }
}

const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// A property name as CEL rules spell it, or `None` when rules cannot name it.
pub(super) fn escape(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || "_.-/".contains(c));
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c)) {
        return None;
    }
    Some(
        name.replace("__", "__underscores__")
            .replace('.', "__dot__")
            .replace('-', "__dash__")
            .replace('/', "__slash__"),
    )
}

/// `value` as a CEL value; the fields of objects escaped, the keys of maps as they are.
fn to_cel(node: &Node, value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => {
            let list = items
                .iter()
                .map(|item| match &node.items {
                    Some(sub) => to_cel(sub, item),
                    None => to_cel(&Node::default(), item),
                })
                .collect();
            cel::Value::List(Arc::new(list))
        }
        Value::Object(map) => {
            let fields = node.has_fields();
            let entries: std::collections::HashMap<String, cel::Value> = map
                .iter()
                .filter_map(|(k, v)| {
                    let name = if fields { escape(k)? } else { k.clone() };
                    let sub = node.child(k);
                    let converted = match sub {
                        Some(sub) => to_cel(sub, v),
                        None => to_cel(&Node::default(), v),
                    };
                    Some((name, converted))
                })
                .collect();
            entries.into()
        }
    }
}
