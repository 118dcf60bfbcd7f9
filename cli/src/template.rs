//! The subset of Go's `text/template` that docker's `--format` flags use, evaluated over JSON.
//!
//! Supported: text, `{{.Field}}` and nested `{{.A.B}}`, `{{.}}`, variables (`$`, `$x := ..`,
//! `range $k, $v := ..`), pipelines with `|`, parentheses, string/number/bool literals,
//! `{{if}}`/`{{else if}}`/`{{else}}`/`{{range}}`/`{{with}}`/`{{end}}`, trim markers `{{-`/`-}}`,
//! comments, and the functions `json index join split upper lower title len eq ne lt le gt ge
//! not and or print println printf truncate pad`. Values print as Go's `%v` prints the
//! decoded JSON: maps as `map[k:v]`, lists as `[a b]`, a missing key as `<no value>`.
//!
//! `docker inspect -f` evaluates against the raw JSON; `ps`/`images` evaluate against a row
//! object whose keys are docker's placeholders, in `strict` mode (an unknown field is an
//! error, as it is on docker's Go structs) and, for the table header, in `header` mode (every
//! function passes its first argument through, as docker's `HeaderFunctions` do).

use serde_json::Value;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    /// Whether the text mentions `$` (the root variable), which then needs a copy of the
    /// data; most templates do not.
    uses_root: bool,
}

/// Why a template could not be parsed or executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "template: :1: {}", self.0)
    }
}

impl std::error::Error for TemplateError {}

type Result<T> = std::result::Result<T, TemplateError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(TemplateError(msg.into()))
}

/// How an evaluation treats unknown fields and functions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mode {
    /// An unknown field of an object is an error rather than `<no value>`.
    pub strict: bool,
    /// Functions return their first argument unchanged (used to render table headers).
    pub header: bool,
    /// A missing map key is an error (`map has no entry for key`), as in `inspect -f`.
    pub missing_key_error: bool,
}

const FUNCTIONS: &[&str] = &[
    "json", "index", "join", "split", "upper", "lower", "title", "len", "eq", "ne", "lt", "le",
    "gt", "ge", "not", "and", "or", "print", "println", "printf", "truncate", "pad",
];

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        cond: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone)]
struct Pipeline {
    decl: Vec<String>,
    cmds: Vec<Vec<Operand>>,
    source: String,
}

#[derive(Debug, Clone)]
enum Operand {
    /// `.A.B` relative to dot; empty for `.` itself.
    Field(Vec<String>),
    /// `$x.A.B`.
    Var(String, Vec<String>),
    Literal(Value),
    Func(String),
    Sub(Box<Pipeline>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Num(Value),
    Ident(String),
    Pipe,
    LParen,
    RParen(Vec<String>),
    Declare,
    Comma,
}

enum Item {
    Text(String),
    Action(String),
}

impl Template {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self> {
        let items = split_items(text)?;
        let mut pos = 0;
        let (nodes, end) = parse_list(&items, &mut pos)?;
        if let Some(end) = end {
            return err(format!("unexpected {{{{{end}}}}}"));
        }
        Ok(Self {
            nodes,
            uses_root: text.contains('$'),
        })
    }

    /// Evaluates the template against `data` with Go's map semantics (missing keys print
    /// `<no value>`).
    pub fn render(&self, data: &Value) -> Result<String> {
        self.render_with(data, Mode::default())
    }

    /// Evaluates the template against `data` in the given mode.
    pub fn render_with(&self, data: &Value, mode: Mode) -> Result<String> {
        let root = Some(data.clone());
        let mut exec = Exec {
            mode,
            vars: if self.uses_root {
                vec![("$".to_string(), root.clone())]
            } else {
                Vec::new()
            },
            out: String::new(),
        };
        exec.walk(&self.nodes, &root)?;
        Ok(exec.out)
    }
}

fn split_items(text: &str) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut before = &rest[..start];
        if trim_next {
            before = before.trim_start();
        }
        let mut inner_start = start + 2;
        if rest[inner_start..].starts_with("- ") || rest[inner_start..].starts_with("-\t") {
            before = before.trim_end();
            inner_start += 1;
        }
        if !before.is_empty() {
            items.push(Item::Text(before.to_string()));
        }
        let after = &rest[inner_start..];
        let close = find_close(after).ok_or_else(|| TemplateError("unclosed action".into()))?;
        let mut inner = &after[..close];
        trim_next = false;
        if inner.ends_with(" -") || inner.ends_with("\t-") {
            inner = &inner[..inner.len() - 1];
            trim_next = true;
        }
        let inner = inner.trim();
        if !(inner.starts_with("/*") && inner.ends_with("*/")) {
            items.push(Item::Action(inner.to_string()));
        }
        rest = &after[close + 2..];
    }
    let tail = if trim_next { rest.trim_start() } else { rest };
    if !tail.is_empty() {
        items.push(Item::Text(tail.to_string()));
    }
    Ok(items)
}

/// Finds the `}}` closing an action, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Parses nodes until `{{else..}}` or `{{end}}`, which is returned (without braces).
fn parse_list(items: &[Item], pos: &mut usize) -> Result<(Vec<Node>, Option<String>)> {
    let mut nodes = Vec::new();
    while *pos < items.len() {
        let item = &items[*pos];
        *pos += 1;
        match item {
            Item::Text(t) => nodes.push(Node::Text(t.clone())),
            Item::Action(a) => {
                let (keyword, rest) = match a.split_once(char::is_whitespace) {
                    Some((k, r)) => (k, r.trim()),
                    None => (a.as_str(), ""),
                };
                match keyword {
                    "end" => return Ok((nodes, Some("end".into()))),
                    "else" => return Ok((nodes, Some(a.clone()))),
                    "if" | "range" | "with" => nodes.push(parse_block(keyword, rest, items, pos)?),
                    _ => nodes.push(Node::Action(parse_pipeline(a)?)),
                }
            }
        }
    }
    Ok((nodes, None))
}

fn parse_block(keyword: &str, rest: &str, items: &[Item], pos: &mut usize) -> Result<Node> {
    if rest.is_empty() {
        return err(format!("missing value for {keyword}"));
    }
    let pipe = parse_pipeline(rest)?;
    let (body, end) = parse_list(items, pos)?;
    let otherwise = match end.as_deref() {
        Some("end") => Vec::new(),
        Some("else") => {
            let (otherwise, end) = parse_list(items, pos)?;
            if end.as_deref() != Some("end") {
                return err(format!("expected end after else in {keyword}"));
            }
            otherwise
        }
        Some(e) if e.starts_with("else ") => {
            // `{{else if x}}` / `{{else with x}}`: a nested block that shares our `{{end}}`.
            let inner = e["else ".len()..].trim();
            let (kw, r) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
            if kw != "if" && kw != "with" {
                return err(format!("unexpected {{{{{e}}}}}"));
            }
            vec![parse_block(kw, r.trim(), items, pos)?]
        }
        _ => return err(format!("unexpected EOF in {keyword}")),
    };
    Ok(match keyword {
        "if" => Node::If {
            cond: pipe,
            then: body,
            otherwise,
        },
        "range" => Node::Range {
            pipe,
            body,
            otherwise,
        },
        _ => Node::With {
            pipe,
            body,
            otherwise,
        },
    })
}

fn tokenize(s: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = s.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let read_fields = |i: &mut usize| -> Vec<String> {
        let mut fields = Vec::new();
        while *i < chars.len() && chars[*i] == '.' {
            let start = *i + 1;
            let mut j = start;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            if j == start {
                break;
            }
            fields.push(chars[start..j].iter().collect());
            *i = j;
        }
        fields
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '|' => {
                tokens.push(Token::Pipe);
                i += 1;
            }
            '(' => {
                tokens.push(Token::LParen);
                i += 1;
            }
            ')' => {
                i += 1;
                tokens.push(Token::RParen(read_fields(&mut i)));
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::Declare);
                i += 2;
            }
            '=' => {
                tokens.push(Token::Declare);
                i += 1;
            }
            '.' => {
                let fields = read_fields(&mut i);
                if fields.is_empty() {
                    i += 1;
                }
                tokens.push(Token::Field(fields));
            }
            '$' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                tokens.push(Token::Var(name, read_fields(&mut i)));
            }
            '"' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return err("unterminated quoted string");
                }
                i += 1;
                let quoted: String = chars[start..i].iter().collect();
                let value: String = serde_json::from_str(&quoted)
                    .map_err(|_| TemplateError(format!("bad string literal {quoted}")))?;
                tokens.push(Token::Str(value));
            }
            '`' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                if i >= chars.len() {
                    return err("unterminated raw string");
                }
                tokens.push(Token::Str(chars[start..i].iter().collect()));
                i += 1;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let value = if let Ok(n) = text.parse::<i64>() {
                    Value::from(n)
                } else {
                    text.parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                        .ok_or_else(|| TemplateError(format!("bad number syntax: {text}")))?
                };
                tokens.push(Token::Num(value));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => return err(format!("unexpected {other:?} in command")),
        }
    }
    Ok(tokens)
}

fn parse_pipeline(source: &str) -> Result<Pipeline> {
    let tokens = tokenize(source)?;
    let mut pos = 0;
    let pipe = parse_tokens(&tokens, &mut pos, source)?;
    if pos != tokens.len() {
        return err(format!("unexpected {:?} in operand", tokens[pos]));
    }
    Ok(pipe)
}

fn parse_tokens(tokens: &[Token], pos: &mut usize, source: &str) -> Result<Pipeline> {
    // Declarations: `$x :=` or `$k, $v :=`.
    let mut decl = Vec::new();
    let mut look = *pos;
    let mut names = Vec::new();
    while let Some(Token::Var(name, fields)) = tokens.get(look) {
        if !fields.is_empty() {
            break;
        }
        names.push(name.clone());
        look += 1;
        match tokens.get(look) {
            Some(Token::Comma) => look += 1,
            Some(Token::Declare) => {
                decl = std::mem::take(&mut names);
                *pos = look + 1;
                break;
            }
            _ => break,
        }
    }
    let mut cmds = Vec::new();
    let mut cmd = Vec::new();
    while *pos < tokens.len() {
        let token = &tokens[*pos];
        *pos += 1;
        match token {
            Token::Pipe => {
                if cmd.is_empty() {
                    return err("missing command before |");
                }
                cmds.push(std::mem::take(&mut cmd));
            }
            Token::RParen(_) => {
                *pos -= 1;
                break;
            }
            Token::LParen => {
                let inner = parse_tokens(tokens, pos, source)?;
                match tokens.get(*pos) {
                    Some(Token::RParen(fields)) => {
                        *pos += 1;
                        cmd.push(Operand::Sub(Box::new(inner), fields.clone()));
                    }
                    _ => return err("unclosed left paren"),
                }
            }
            Token::Field(f) => cmd.push(Operand::Field(f.clone())),
            Token::Var(n, f) => cmd.push(Operand::Var(n.clone(), f.clone())),
            Token::Str(s) => cmd.push(Operand::Literal(Value::String(s.clone()))),
            Token::Num(n) => cmd.push(Operand::Literal(n.clone())),
            Token::Ident(id) => cmd.push(match id.as_str() {
                "true" => Operand::Literal(Value::Bool(true)),
                "false" => Operand::Literal(Value::Bool(false)),
                "nil" => Operand::Literal(Value::Null),
                f if FUNCTIONS.contains(&f) => Operand::Func(id.clone()),
                _ => return err(format!("function \"{id}\" not defined")),
            }),
            Token::Comma | Token::Declare => {
                return err(format!("unexpected {token:?} in command"))
            }
        }
    }
    if cmd.is_empty() {
        return err("missing value for command");
    }
    cmds.push(cmd);
    Ok(Pipeline {
        decl,
        cmds,
        source: source.trim().to_string(),
    })
}

/// A value during evaluation; `None` is Go's "no value" (a missing map key).
type Val = Option<Value>;

struct Exec {
    mode: Mode,
    vars: Vec<(String, Val)>,
    out: String,
}

impl Exec {
    fn walk(&mut self, nodes: &[Node], dot: &Val) -> Result<()> {
        for node in nodes {
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&print_value(&v));
                    }
                }
                Node::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    let depth = self.vars.len();
                    let v = self.pipeline(cond, dot)?;
                    let branch = if truthy(&v) { then } else { otherwise };
                    self.walk(branch, dot)?;
                    self.vars.truncate(depth);
                }
                Node::With {
                    pipe,
                    body,
                    otherwise,
                } => {
                    let depth = self.vars.len();
                    let v = self.pipeline(pipe, dot)?;
                    if truthy(&v) {
                        self.walk(body, &v)?;
                    } else {
                        self.walk(otherwise, dot)?;
                    }
                    self.vars.truncate(depth);
                }
                Node::Range {
                    pipe,
                    body,
                    otherwise,
                } => {
                    let depth = self.vars.len();
                    let mut eval_pipe = pipe.clone();
                    let decl = std::mem::take(&mut eval_pipe.decl);
                    let v = self.pipeline(&eval_pipe, dot)?;
                    let entries: Vec<(Value, Value)> = match &v {
                        Some(Value::Array(items)) => items
                            .iter()
                            .enumerate()
                            .map(|(i, x)| (Value::from(i), x.clone()))
                            .collect(),
                        Some(Value::Object(map)) => map
                            .iter()
                            .map(|(k, x)| (Value::String(k.clone()), x.clone()))
                            .collect(),
                        None | Some(Value::Null) => Vec::new(),
                        Some(other) => {
                            return err(format!(
                                "range can't iterate over {}",
                                print_value(&Some(other.clone()))
                            ))
                        }
                    };
                    if entries.is_empty() {
                        self.walk(otherwise, dot)?;
                    }
                    for (key, item) in entries {
                        let inner = self.vars.len();
                        match decl.as_slice() {
                            [] => {}
                            [v] => self.vars.push((v.clone(), Some(item.clone()))),
                            [k, v, ..] => {
                                self.vars.push((k.clone(), Some(key)));
                                self.vars.push((v.clone(), Some(item.clone())));
                            }
                        }
                        self.walk(body, &Some(item))?;
                        self.vars.truncate(inner);
                    }
                    self.vars.truncate(depth);
                }
            }
        }
        Ok(())
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Val) -> Result<Val> {
        let mut piped: Option<Val> = None;
        for cmd in &p.cmds {
            piped = Some(self.command(cmd, dot, piped, &p.source)?);
        }
        let value = piped.unwrap_or(None);
        for name in &p.decl {
            self.vars.push((name.clone(), value.clone()));
        }
        Ok(value)
    }

    fn command(
        &mut self,
        cmd: &[Operand],
        dot: &Val,
        piped: Option<Val>,
        src: &str,
    ) -> Result<Val> {
        match &cmd[0] {
            Operand::Func(name) => {
                let mut args = Vec::with_capacity(cmd.len());
                for op in &cmd[1..] {
                    args.push(self.operand(op, dot, src)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                self.call(name, args)
            }
            op => {
                let base = self.operand(op, dot, src)?;
                let mut args = Vec::new();
                for op in &cmd[1..] {
                    args.push(self.operand(op, dot, src)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                if args.is_empty() {
                    return Ok(base);
                }
                // A field given arguments acts like docker's `.Label "k"` method: index it.
                if self.mode.header {
                    return Ok(base);
                }
                match (&base, &args[0]) {
                    (Some(Value::Object(m)), Some(Value::String(k))) => Ok(Some(
                        m.get(k).cloned().unwrap_or(Value::String(String::new())),
                    )),
                    _ => err(format!(
                        "executing \"\" at <{src}>: can't give argument to non-function"
                    )),
                }
            }
        }
    }

    fn operand(&mut self, op: &Operand, dot: &Val, src: &str) -> Result<Val> {
        match op {
            Operand::Field(fields) => self.fields(dot, fields, src),
            Operand::Var(name, fields) => {
                let base = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v)
                    .ok_or_else(|| TemplateError(format!("undefined variable: {name}")))?;
                self.fields(base, fields, src)
            }
            Operand::Literal(v) => Ok(Some(v.clone())),
            Operand::Func(name) => self.call(name, Vec::new()),
            Operand::Sub(p, fields) => {
                let v = self.pipeline(p, dot)?;
                self.fields(&v, fields, src)
            }
        }
    }

    /// Follows `fields` from `v`, copying only what they lead to (a row is looked into for
    /// every placeholder: copying it whole each time was most of a listing's work).
    fn fields(&self, v: &Val, fields: &[String], src: &str) -> Result<Val> {
        let mut v: Option<&Value> = v.as_ref();
        for f in fields {
            v = match v {
                Some(Value::Object(m)) => match m.get(f) {
                    Some(x) => Some(x),
                    None if self.mode.strict => {
                        return err(format!(
                            "executing \"\" at <{src}>: can't evaluate field {f}"
                        ))
                    }
                    None if self.mode.missing_key_error => {
                        return err(format!(
                            "executing \"\" at <{src}>: map has no entry for key \"{f}\""
                        ))
                    }
                    None => None,
                },
                None | Some(Value::Null) => None,
                Some(_) => {
                    return err(format!(
                        "executing \"\" at <{src}>: can't evaluate field {f} in type string"
                    ))
                }
            };
        }
        Ok(v.cloned())
    }

    fn call(&self, name: &str, args: Vec<Val>) -> Result<Val> {
        let arity = |n: usize| -> Result<()> {
            if args.len() < n {
                err(format!(
                    "wrong number of args for {name}: want {n} got {}",
                    args.len()
                ))
            } else {
                Ok(())
            }
        };
        if self.mode.header
            && matches!(
                name,
                "json" | "join" | "split" | "upper" | "lower" | "title" | "truncate" | "pad"
            )
        {
            arity(1)?;
            return Ok(args.into_iter().next().unwrap_or(None));
        }
        let s = |v: &Val| print_value(v);
        let string = |v: String| Ok(Some(Value::String(v)));
        match name {
            "json" => {
                arity(1)?;
                string(go_json(args[0].as_ref().unwrap_or(&Value::Null)))
            }
            "upper" => {
                arity(1)?;
                string(s(&args[0]).to_uppercase())
            }
            "lower" => {
                arity(1)?;
                string(s(&args[0]).to_lowercase())
            }
            "title" => {
                arity(1)?;
                string(
                    s(&args[0])
                        .split(' ')
                        .map(|w| {
                            let mut c = w.chars();
                            c.next()
                                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                                .unwrap_or_default()
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            }
            "join" => {
                arity(2)?;
                let sep = s(&args[1]);
                match &args[0] {
                    Some(Value::Array(items)) => string(
                        items
                            .iter()
                            .map(|i| print_value(&Some(i.clone())))
                            .collect::<Vec<_>>()
                            .join(&sep),
                    ),
                    other => string(s(other)),
                }
            }
            "split" => {
                arity(2)?;
                Ok(Some(Value::Array(
                    s(&args[0])
                        .split(&s(&args[1]))
                        .map(|p| Value::String(p.to_string()))
                        .collect(),
                )))
            }
            "truncate" => {
                arity(2)?;
                let n = args[1].as_ref().and_then(Value::as_u64).unwrap_or(0) as usize;
                string(s(&args[0]).chars().take(n).collect())
            }
            "pad" => {
                arity(3)?;
                let l = args[1].as_ref().and_then(Value::as_u64).unwrap_or(0) as usize;
                let r = args[2].as_ref().and_then(Value::as_u64).unwrap_or(0) as usize;
                string(format!("{}{}{}", " ".repeat(l), s(&args[0]), " ".repeat(r)))
            }
            "len" => {
                arity(1)?;
                let n = match &args[0] {
                    Some(Value::Array(a)) => a.len(),
                    Some(Value::Object(m)) => m.len(),
                    Some(Value::String(st)) => st.len(),
                    None | Some(Value::Null) => 0,
                    Some(other) => return err(format!("len of type {}", s(&Some(other.clone())))),
                };
                Ok(Some(Value::from(n)))
            }
            "index" => {
                arity(1)?;
                let mut v = args[0].clone();
                for key in &args[1..] {
                    v =
                        match (&v, key) {
                            (Some(Value::Object(m)), Some(Value::String(k))) => m.get(k).cloned(),
                            (Some(Value::Array(a)), Some(Value::Number(n))) => {
                                let i = n.as_u64().unwrap_or(u64::MAX) as usize;
                                Some(a.get(i).cloned().ok_or_else(|| {
                                    TemplateError(format!("index out of range: {i}"))
                                })?)
                            }
                            (None | Some(Value::Null), _) => None,
                            _ => return err(format!("can't index item of type {}", s(&v))),
                        };
                }
                Ok(v)
            }
            "eq" | "ne" => {
                arity(2)?;
                let first = &args[0];
                let equal = args[1..].iter().any(|a| values_equal(first, a));
                Ok(Some(Value::Bool(if name == "eq" { equal } else { !equal })))
            }
            "lt" | "le" | "gt" | "ge" => {
                arity(2)?;
                let ord = compare(&args[0], &args[1]).ok_or_else(|| {
                    TemplateError(format!("incompatible types for comparison in {name}"))
                })?;
                use std::cmp::Ordering::*;
                let r = match name {
                    "lt" => ord == Less,
                    "le" => ord != Greater,
                    "gt" => ord == Greater,
                    _ => ord != Less,
                };
                Ok(Some(Value::Bool(r)))
            }
            "not" => {
                arity(1)?;
                Ok(Some(Value::Bool(!truthy(&args[0]))))
            }
            "and" => {
                arity(1)?;
                let idx = args
                    .iter()
                    .position(|a| !truthy(a))
                    .unwrap_or(args.len() - 1);
                Ok(args[idx].clone())
            }
            "or" => {
                arity(1)?;
                let idx = args.iter().position(truthy).unwrap_or(args.len() - 1);
                Ok(args[idx].clone())
            }
            "print" => string(args.iter().map(s).collect::<Vec<_>>().join("")),
            "println" => string(args.iter().map(s).collect::<Vec<_>>().join(" ") + "\n"),
            "printf" => {
                arity(1)?;
                string(printf(&s(&args[0]), &args[1..]))
            }
            _ => err(format!("function \"{name}\" not defined")),
        }
    }
}

fn values_equal(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn compare(a: &Val, b: &Val) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Some(Value::String(x)), Some(Value::String(y))) => Some(x.cmp(y)),
        _ => None,
    }
}

fn printf(format: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('q') => out.push_str(&go_json(&Value::String(
                args.next().map(print_value).unwrap_or_default(),
            ))),
            Some(_) => out.push_str(&args.next().map(print_value).unwrap_or_default()),
            None => out.push('%'),
        }
    }
    out
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
fn truthy(v: &Val) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

/// Prints a value as Go's `%v` prints decoded JSON.
pub fn print_value(v: &Val) -> String {
    match v {
        None => "<no value>".into(),
        Some(Value::Null) => "<nil>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(items)) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| print_value(&Some(i.clone())))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Some(Value::Object(m)) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, x)| format!("{k}:{}", print_value(&Some(x.clone()))))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Encodes `v` as Go's `json.Marshal` does: compact, with `<`, `>` and `&` escaped.
pub fn go_json(v: &Value) -> String {
    let text = serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    escape_html(&text)
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, data: &Value) -> String {
        Template::parse(t).unwrap().render(data).unwrap()
    }

    #[test]
    fn fields_and_nesting() {
        let data = json!({"Name":"/web","State":{"Status":"running","Pid":9751,"Running":true}});
        assert_eq!(render("{{.Name}}", &data), "/web");
        assert_eq!(
            render("{{.State.Status}} {{.State.Pid}}", &data),
            "running 9751"
        );
        assert_eq!(render("{{.State.Running}}", &data), "true");
        assert_eq!(render("x{{.Missing}}y", &data), "x<no value>y");
        assert_eq!(render("{{.Missing.Deeper}}", &data), "<no value>");
    }

    #[test]
    fn json_function_sorts_keys_and_escapes_like_go() {
        let data = json!({"Config":{"Labels":{"b":"2","a":"<1>"}},"Cmd":["echo","hi"]});
        assert_eq!(
            render("{{json .Config.Labels}}", &data),
            r#"{"a":"\u003c1\u003e","b":"2"}"#
        );
        assert_eq!(render("{{json .Cmd}}", &data), r#"["echo","hi"]"#);
        assert_eq!(
            render("{{json .}}", &json!({"b":1,"a":null})),
            r#"{"a":null,"b":1}"#
        );
    }

    #[test]
    fn go_value_printing() {
        let data = json!({"L":{"k":"v","a":"b"},"A":["x","y"],"N":null,"F":1.5});
        assert_eq!(render("{{.L}}", &data), "map[a:b k:v]");
        assert_eq!(render("{{.A}}", &data), "[x y]");
        assert_eq!(render("{{.N}}", &data), "<nil>");
        assert_eq!(render("{{.F}}", &data), "1.5");
    }

    #[test]
    fn index_join_and_functions() {
        let data = json!({"Labels":{"com.example/k":"v1"},"Names":["a","b"]});
        assert_eq!(render(r#"{{index .Labels "com.example/k"}}"#, &data), "v1");
        assert_eq!(render(r#"{{index .Names 1}}"#, &data), "b");
        assert_eq!(render(r#"{{join .Names ","}}"#, &data), "a,b");
        assert_eq!(render(r#"{{.Names | len}}"#, &data), "2");
        assert_eq!(render(r#"{{upper "x"}}{{lower "Y"}}"#, &data), "Xy");
        assert_eq!(render(r#"{{printf "%s-%d" "a" 3}}"#, &data), "a-3");
    }

    #[test]
    fn control_flow_and_variables() {
        let data =
            json!({"Mounts":[{"Source":"/a"},{"Source":"/b"}],"On":true,"Env":{"X":"1","Y":"2"}});
        assert_eq!(
            render("{{range .Mounts}}{{.Source}};{{end}}", &data),
            "/a;/b;"
        );
        assert_eq!(
            render("{{range $k, $v := .Env}}{{$k}}={{$v}} {{end}}", &data),
            "X=1 Y=2 "
        );
        assert_eq!(
            render("{{range .None}}x{{else}}empty{{end}}", &data),
            "empty"
        );
        assert_eq!(render("{{if .On}}yes{{else}}no{{end}}", &data), "yes");
        assert_eq!(
            render(
                r#"{{if eq .Env.X "2"}}a{{else if eq .Env.X "1"}}b{{else}}c{{end}}"#,
                &data
            ),
            "b"
        );
        assert_eq!(render("{{with .Env}}{{.Y}}{{end}}", &data), "2");
        assert_eq!(render("{{$x := .Env.X}}[{{$x}}]{{$.On}}", &data), "[1]true");
        assert_eq!(render("a {{- .Env.X -}} b", &data), "a1b");
        assert_eq!(render("{{/* note */}}z", &data), "z");
    }

    #[test]
    fn strict_and_header_modes() {
        let row = json!({"ID":"abc","Label":{"k":"v"}});
        let t = Template::parse(r#"{{.ID}} {{.Label "k"}} {{.Label "nope"}}|"#).unwrap();
        let strict = Mode {
            strict: true,
            ..Mode::default()
        };
        assert_eq!(t.render_with(&row, strict).unwrap(), "abc v |");
        assert!(Template::parse("{{.Nope}}")
            .unwrap()
            .render_with(&row, strict)
            .unwrap_err()
            .to_string()
            .contains("can't evaluate field Nope"));
        let header = json!({"ID":"CONTAINER ID","Label":"LABEL"});
        let t = Template::parse(r#"{{json .ID}} {{.Label "k"}}"#).unwrap();
        let mode = Mode {
            strict: true,
            header: true,
            ..Mode::default()
        };
        assert_eq!(t.render_with(&header, mode).unwrap(), "CONTAINER ID LABEL");
    }

    #[test]
    fn parse_errors() {
        assert!(Template::parse("{{.A").is_err());
        assert!(Template::parse("{{if .A}}x").is_err());
        assert!(Template::parse("{{end}}").is_err());
        assert_eq!(
            Template::parse("{{nosuchfunc .A}}")
                .unwrap_err()
                .to_string(),
            "template: :1: function \"nosuchfunc\" not defined"
        );
        let inspect = Mode {
            missing_key_error: true,
            ..Mode::default()
        };
        assert!(Template::parse("{{.A.B}}")
            .unwrap()
            .render_with(&json!({"A": {}}), inspect)
            .unwrap_err()
            .to_string()
            .ends_with("map has no entry for key \"B\""));
    }
}
