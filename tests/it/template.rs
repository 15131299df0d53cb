//! What only this test can check about `template.yaml`: that the template, the code and
//! docs/operations.md agree. Every metric the code emits (`Metric::ALL`) is alarmed or charted,
//! and the template shows no other; every setting a function reads reaches it from a
//! documented parameter whose default is the code's; each role holds exactly the grants its
//! function's calls need; each secret reaches only the functions that read it; the routes,
//! binaries, table index and queue sizes are the code's; the alarms and the dashboard match
//! the runbook.
//!
//! What any stack should satisfy (no wildcard or managed IAM policies, nothing public, queues
//! encrypted and TLS-only, tables retained, log retention, API throttling and access logs, no
//! plain-text secrets) is cfn-lint's: the custom rules in scripts/cfn-rules/, run by `.ci/run`
//! and `make validate`.
//!
//! The template is parsed with serde_yaml; CloudFormation's short tags (`!Ref`, `!GetAtt`,
//! `!Sub`, `!If`, ...) arrive as `Value::Tagged` and are rewritten into their long JSON
//! forms (`{"Ref": ...}`, `{"Fn::GetAtt": [...]}`), so each check handles one form only.
//! Every check returns a list of problems. The tests in `mod real_template` run each one on
//! the template under test (no problems); the others run each one on a broken copy (at least
//! one problem).
//!
//! The template under test is `SPARKBRIDGE_TEMPLATE` (a path) when set, else the
//! repository's `template.yaml`: `scripts/template-mutants.sh` points it at broken copies
//! and runs `real_template::` to show that every breakage is caught.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use sparkbridge::telemetry::metrics::{Metric, NAMESPACE};

const OPERATIONS: &str = include_str!("../../docs/operations.md");

/// (method, path, binary of the function that must serve it). `ANY` sends the other methods
/// to the function, which answers 405 with `Allow` (API Gateway would answer 404 for a route
/// it does not know).
const ROUTES: [(&str, &str, &str); 7] = [
    ("POST", "/webhooks/loops", "ingest-loops"),
    ("ANY", "/webhooks/loops", "ingest-loops"),
    ("GET", "/webhooks/esputnik", "ingest-esputnik"),
    ("POST", "/webhooks/esputnik", "ingest-esputnik"),
    ("ANY", "/webhooks/esputnik", "ingest-esputnik"),
    ("POST", "/webhooks/sparkloop", "ingest-sparkloop"),
    ("ANY", "/webhooks/sparkloop", "ingest-sparkloop"),
];

// =========================================================================================
// Parsing
// =========================================================================================

fn parse(yaml: &str) -> Value {
    let v: serde_yaml::Value = serde_yaml::from_str(yaml).expect("template is valid YAML");
    to_json(v)
}

fn to_json(v: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64())
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        Y::Number(n) => n.to_string(),
                        Y::Bool(b) => b.to_string(),
                        other => panic!("unsupported mapping key {other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            intrinsic(tag.trim_start_matches('!'), to_json(t.value))
        }
    }
}

/// The long form of a CloudFormation short tag. An unknown tag is a typo (`!Reff`): it fails.
fn intrinsic(tag: &str, value: Value) -> Value {
    match tag {
        "Ref" => json!({ "Ref": value }),
        "Condition" => json!({ "Condition": value }),
        "GetAtt" => match value {
            // `!GetAtt Resource.Attribute` (the attribute may itself contain dots)
            Value::String(s) => {
                let (resource, attribute) = s
                    .split_once('.')
                    .unwrap_or_else(|| panic!("!GetAtt {s}: expected Resource.Attribute"));
                json!({ "Fn::GetAtt": [resource, attribute] })
            }
            other => json!({ "Fn::GetAtt": other }),
        },
        "Sub" | "If" | "Equals" | "Not" | "And" | "Or" | "Join" | "Select" | "Split"
        | "FindInMap" | "Base64" | "Cidr" | "GetAZs" | "ImportValue" | "Length"
        | "ToJsonString" | "Transform" => {
            let mut m = Map::new();
            m.insert(format!("Fn::{tag}"), value);
            Value::Object(m)
        }
        other => panic!("unknown CloudFormation tag !{other}"),
    }
}

// =========================================================================================
// Helpers
// =========================================================================================

fn resources(t: &Value) -> impl Iterator<Item = (&str, &Value)> {
    t["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v))
}

fn of_type<'a>(t: &'a Value, ty: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
    resources(t).filter(move |(_, r)| r["Type"] == ty)
}

fn functions(t: &Value) -> Vec<(&str, &Value)> {
    of_type(t, "AWS::Serverless::Function").collect()
}

fn resource<'a>(t: &'a Value, id: &str) -> Option<&'a Value> {
    t["Resources"].get(id)
}

fn is_type(t: &Value, id: &str, ty: &str) -> bool {
    resource(t, id).is_some_and(|r| r["Type"] == ty)
}

fn ref_of(v: &Value) -> Option<&str> {
    v.get("Ref")?.as_str()
}

fn getatt(v: &Value) -> Option<(&str, &str)> {
    let a = v.get("Fn::GetAtt")?.as_array()?;
    Some((a.first()?.as_str()?, a.get(1)?.as_str()?))
}

fn sub_string(v: &Value) -> Option<&str> {
    match v.get("Fn::Sub")? {
        Value::String(s) => Some(s),
        Value::Array(a) => a.first()?.as_str(),
        _ => None,
    }
}

/// A function property, falling back to `Globals.Function` as SAM does.
fn fn_prop<'a>(t: &'a Value, f: &'a Value, key: &str) -> Option<&'a Value> {
    f["Properties"]
        .get(key)
        .or_else(|| t["Globals"]["Function"].get(key))
}

fn list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => vec![],
        other => vec![other],
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn truthy(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true))) || v.and_then(Value::as_str) == Some("true")
}

fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Every string anywhere inside `v`.
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// A policy statement with the condition it sits under (`Fn::If` in a role's Policies).
struct Statement<'a> {
    stmt: &'a Value,
    condition: Option<String>,
}

fn role_statements(role: &Value) -> Vec<Statement<'_>> {
    fn walk<'a>(policy: &'a Value, condition: Option<String>, out: &mut Vec<Statement<'a>>) {
        if let Some(branches) = policy.get("Fn::If").and_then(Value::as_array) {
            // the "then" branch holds under the condition, the "else" branch under its negation
            let cond = branches.first().map(compact).unwrap_or_default();
            for (i, branch) in branches.iter().enumerate().skip(1) {
                let c = if i == 1 {
                    cond.clone()
                } else {
                    format!("!{cond}")
                };
                walk(branch, Some(c), out);
            }
            return;
        }
        if ref_of(policy) == Some("AWS::NoValue") {
            return;
        }
        for stmt in list(&policy["PolicyDocument"]["Statement"]) {
            out.push(Statement {
                stmt,
                condition: condition.clone(),
            });
        }
    }
    let mut out = Vec::new();
    for policy in list(&role["Properties"]["Policies"]) {
        walk(policy, None, &mut out);
    }
    out
}

/// Logical id of the role a function runs with (`Role: !GetAtt XRole.Arn`).
fn role_of(f: &Value) -> Option<&str> {
    match getatt(&f["Properties"]["Role"]) {
        Some((id, "Arn")) => Some(id),
        _ => None,
    }
}

fn events<'a>(f: &'a Value, ty: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
    f["Properties"]["Events"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(move |(_, e)| e["Type"] == ty)
        .map(|(k, v)| (k.as_str(), &v["Properties"]))
}

fn binary(f: &Value) -> Option<&str> {
    f["Metadata"]["BuildProperties"]["Binary"].as_str()
}

// =========================================================================================
// Checks
// =========================================================================================

/// The queues the code names: every function learns the event queue (`QUEUE_URL`), the
/// consumer also the dead-letter queue it parks on (`DLQ_URL`), and SQS redrives to that same
/// queue, the one `sparkbridge dlq` reads. (That every queue has a dead-letter queue, and how
/// long it keeps messages, is cfn-lint's E9123.)
fn check_queue_wiring(t: &Value) -> Vec<String> {
    let mut p = Vec::new();
    for id in ["EventQueue", "DeadLetterQueue"] {
        if !is_type(t, id, "AWS::SQS::Queue") {
            p.push(format!("{id}: no AWS::SQS::Queue of that name"));
        }
    }
    let q = &t["Resources"]["EventQueue"]["Properties"];
    if getatt(&q["RedrivePolicy"]["deadLetterTargetArn"]) != Some(("DeadLetterQueue", "Arn")) {
        p.push(format!(
            "EventQueue: RedrivePolicy.deadLetterTargetArn must be !GetAtt DeadLetterQueue.Arn, got {}",
            compact(&q["RedrivePolicy"]["deadLetterTargetArn"])
        ));
    }
    for (fid, f) in functions(t) {
        let var = |name: &str| env_var(t, f, name).and_then(ref_of).map(str::to_owned);
        if var("QUEUE_URL").as_deref() != Some("EventQueue") {
            p.push(format!("{fid}: QUEUE_URL is not !Ref EventQueue"));
        }
        // the worker parks on the DLQ; nothing else needs (or may use) it
        let consumes = events(f, "SQS").next().is_some();
        match (consumes, var("DLQ_URL").as_deref()) {
            (true, Some("DeadLetterQueue")) | (false, None) => {}
            (true, _) => p.push(format!("{fid}: DLQ_URL is not !Ref DeadLetterQueue")),
            (false, Some(_)) => p.push(format!(
                "{fid}: gets DLQ_URL but does not consume the queue"
            )),
        }
    }
    p
}

/// The (single) SQS consumer and its event source properties.
fn worker(t: &Value) -> Result<(&str, &Value, &Value), String> {
    let consumers: Vec<(&str, &Value, &Value)> = functions(t)
        .into_iter()
        .flat_map(|(fid, f)| events(f, "SQS").map(move |(_, e)| (fid, f, e)))
        .collect();
    match consumers.as_slice() {
        [one] => Ok(*one),
        other => Err(format!(
            "expected exactly one SQS event source, found {}",
            other.len()
        )),
    }
}

/// The worker's event source reads the event queue, at most `WorkerMaxConcurrency` at once:
/// the worker splits the SparkLoop rate by `WORKER_MAX_CONCURRENCY`, the same parameter.
/// (Reporting batch item failures is cfn-lint's E9124.)
fn check_worker_event_source(t: &Value) -> Vec<String> {
    let (fid, _, e) = match worker(t) {
        Ok(w) => w,
        Err(e) => return vec![e],
    };
    let mut p = Vec::new();
    if getatt(&e["Queue"]) != Some(("EventQueue", "Arn")) {
        p.push(format!(
            "{fid}: SQS event Queue must be !GetAtt EventQueue.Arn"
        ));
    }
    if ref_of(&e["ScalingConfig"]["MaximumConcurrency"]) != Some("WorkerMaxConcurrency") {
        p.push(format!(
            "{fid}: SQS event ScalingConfig.MaximumConcurrency must be !Ref WorkerMaxConcurrency \
             (else a backlog scales the worker, and its SparkLoop rate shares, without bound)"
        ));
    }
    p
}

/// The webhook routes exist on the stack's HttpApi, each served by the right binary, and
/// there are no others.
fn check_routes(t: &Value) -> Vec<String> {
    let mut p = Vec::new();
    if !is_type(t, "HttpApi", "AWS::Serverless::HttpApi") {
        p.push("HttpApi: no AWS::Serverless::HttpApi of that name".into());
    }
    let mut routes: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (fid, f) in functions(t) {
        for (name, e) in events(f, "HttpApi") {
            if ref_of(&e["ApiId"]) != Some("HttpApi") {
                p.push(format!(
                    "{fid}.{name}: ApiId must be !Ref HttpApi (else SAM makes an implicit API \
                     without the access log and throttling)"
                ));
            }
            let method = compact(&e["Method"]).to_ascii_uppercase();
            let path = compact(&e["Path"]);
            routes
                .entry((method, path))
                .or_default()
                .push(binary(f).unwrap_or(fid).to_string());
        }
    }
    for (method, path, bin) in ROUTES {
        match routes.get(&(method.to_string(), path.to_string())) {
            None => p.push(format!("route {method} {path} is missing")),
            Some(bins) if bins.as_slice() != [bin] => p.push(format!(
                "route {method} {path} is served by {bins:?}, not {bin}"
            )),
            Some(_) => {}
        }
    }
    for (method, path) in routes.keys() {
        if !ROUTES.iter().any(|(m, pa, _)| m == method && pa == path) {
            p.push(format!("unexpected route {method} {path}"));
        }
    }
    p
}

/// Every function is built by cargo-lambda from the workspace root, for provided.al2023,
/// from a binary the workspace has, with the architecture the CI fallback can override.
fn check_build(t: &Value, workspace_bins: &BTreeSet<String>) -> Vec<String> {
    let mut p = Vec::new();
    let fns = functions(t);
    if fns.is_empty() {
        p.push("no AWS::Serverless::Function".into());
    }
    let mut seen = BTreeSet::new();
    for (fid, f) in fns {
        if f["Metadata"]["BuildMethod"] != "rust-cargolambda" {
            p.push(format!(
                "{fid}: Metadata.BuildMethod must be rust-cargolambda"
            ));
        }
        match binary(f) {
            Some(b) if !b.is_empty() => {
                if !workspace_bins.contains(b) {
                    p.push(format!(
                        "{fid}: binary {b:?} is not a package under functions/"
                    ));
                }
                if !seen.insert(b.to_string()) {
                    p.push(format!("{fid}: binary {b:?} used by two functions"));
                }
            }
            _ => p.push(format!("{fid}: Metadata.BuildProperties.Binary missing")),
        }
        if fn_prop(t, f, "CodeUri").map(compact).as_deref() != Some(".") {
            p.push(format!("{fid}: CodeUri must be \".\" (the workspace root)"));
        }
        if fn_prop(t, f, "Runtime").map(compact).as_deref() != Some("provided.al2023") {
            p.push(format!("{fid}: Runtime must be provided.al2023"));
        }
        if fn_prop(t, f, "Handler").map(compact).as_deref() != Some("bootstrap") {
            p.push(format!("{fid}: Handler must be bootstrap"));
        }
        let arch = fn_prop(t, f, "Architectures").map(list).unwrap_or_default();
        if arch.len() != 1 || ref_of(arch[0]) != Some("Architecture") {
            p.push(format!(
                "{fid}: Architectures must be [!Ref Architecture] (CI builds x86_64 when the \
                 aarch64 target is unavailable)"
            ));
        }
    }
    let allowed: BTreeSet<String> = list(&t["Parameters"]["Architecture"]["AllowedValues"])
        .into_iter()
        .map(compact)
        .collect();
    if allowed != BTreeSet::from(["arm64".to_string(), "x86_64".to_string()]) {
        p.push(format!(
            "parameter Architecture: AllowedValues must be arm64, x86_64, got {allowed:?}"
        ));
    }
    p
}

/// The state table expires records on the attribute the code writes, and has the one index
/// the code queries. (Its retention and protection are cfn-lint's E9131.)
fn check_table(t: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let tables: Vec<_> = of_type(t, "AWS::DynamoDB::Table").collect();
    if tables.is_empty() {
        p.push("no AWS::DynamoDB::Table".into());
    }
    for (id, table) in tables {
        let props = &table["Properties"];
        let ttl = &props["TimeToLiveSpecification"];
        if !truthy(ttl.get("Enabled")) || ttl["AttributeName"] != "expires_at" {
            p.push(format!("{id}: TTL on expires_at must be enabled"));
        }
        let indexes: Vec<String> = list(&props["GlobalSecondaryIndexes"])
            .into_iter()
            .map(|i| compact(&i["IndexName"]))
            .collect();
        if indexes != [sparkbridge::adapters::dynamodb::INDEX] {
            p.push(format!(
                "{id}: GlobalSecondaryIndexes are {indexes:?}, the code queries only {:?}",
                sparkbridge::adapters::dynamodb::INDEX
            ));
        }
    }
    p
}

/// The dashboard body with `${...}` substituted, parsed as JSON. A Number parameter stands
/// unquoted (an annotation's `"value": ${Threshold}`), so it becomes its default.
fn dashboard(t: &Value) -> Result<Value, String> {
    dashboard_with(t, false)
}

/// The dashboard body parsed as JSON. With `keep_refs`, every `${...}` stays as written, and
/// an unquoted Number parameter becomes the string `"${Name}"`, so a threshold annotation
/// shows which parameter it comes from; without, `${...}` become defaults or `SUBSTITUTED`.
fn dashboard_with(t: &Value, keep_refs: bool) -> Result<Value, String> {
    let (id, d) = of_type(t, "AWS::CloudWatch::Dashboard")
        .next()
        .ok_or("no AWS::CloudWatch::Dashboard")?;
    let body = &d["Properties"]["DashboardBody"];
    let text = body
        .as_str()
        .or_else(|| sub_string(body))
        .ok_or_else(|| format!("{id}: DashboardBody is neither a string nor a !Sub"))?;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("{id}: unclosed ${{ in DashboardBody"))?;
        let name = &rest[start + 2..start + end];
        let unquoted = matches!(out.trim_end().chars().last(), Some(':' | ',' | '['));
        match t["Parameters"].get(name) {
            Some(param) if param["Type"] == "Number" => match (keep_refs, unquoted) {
                (false, _) => out.push_str(&compact(&param["Default"])),
                (true, true) => out.push_str(&format!("\"${{{name}}}\"")),
                (true, false) => out.push_str(&format!("${{{name}}}")),
            },
            _ if keep_refs => out.push_str(&format!("${{{name}}}")),
            _ => out.push_str("SUBSTITUTED"),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    serde_json::from_str(&out).map_err(|e| format!("{id}: DashboardBody is not JSON: {e}"))
}

/// The metric rows of a dashboard widget, `[namespace, metric, dim, value, ...]`, with `"."`
/// (same as the row above) and a leading `"..."` (the row above's head) resolved; expression
/// rows are left out.
fn metric_rows(widget: &Value) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut prev: Vec<String> = Vec::new();
    for row in list(&widget["properties"]["metrics"]) {
        let cells = list(row);
        if cells.first().is_some_and(|c| c.get("expression").is_some()) {
            continue;
        }
        let strs: Vec<String> = cells
            .iter()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect();
        let resolved: Vec<String> = if strs.first().map(String::as_str) == Some("...") {
            let tail = &strs[1..];
            let keep = prev.len().saturating_sub(tail.len());
            prev[..keep].iter().chain(tail).cloned().collect()
        } else {
            strs.iter()
                .enumerate()
                .map(|(i, s)| {
                    if s == "." {
                        prev.get(i).cloned().unwrap_or_default()
                    } else {
                        s.clone()
                    }
                })
                .collect()
        };
        rows.push(resolved.clone());
        prev = resolved;
    }
    rows
}

/// The metrics the code emits, by name.
fn emitted_metrics() -> BTreeSet<String> {
    Metric::ALL.iter().map(|m| m.name().to_string()).collect()
}

/// Metric names of the code's namespace that the dashboard or an alarm shows.
fn shown_metrics(t: &Value) -> (BTreeSet<String>, Vec<String>) {
    let mut names = BTreeSet::new();
    let mut p = Vec::new();
    for (_, a) in of_type(t, "AWS::CloudWatch::Alarm") {
        if a["Properties"]["Namespace"] == NAMESPACE {
            names.insert(compact(&a["Properties"]["MetricName"]));
        }
    }
    let in_search = format!("Namespace=\"{NAMESPACE}\"");
    match dashboard(t) {
        Err(e) => p.push(e),
        Ok(body) => {
            for w in list(&body["widgets"]) {
                for row in list(&w["properties"]["metrics"]) {
                    if let Some(expr) = list(row).first().and_then(|c| c["expression"].as_str()) {
                        if expr.contains(&in_search) {
                            for part in expr.split("MetricName=\"").skip(1) {
                                if let Some((name, _)) = part.split_once('"') {
                                    names.insert(name.to_string());
                                }
                            }
                        }
                    }
                }
                for resolved in metric_rows(w) {
                    if resolved.first().map(String::as_str) == Some(NAMESPACE) {
                        if let Some(m) = resolved.get(1) {
                            names.insert(m.clone());
                        }
                    }
                }
            }
        }
    }
    (names, p)
}

/// Every metric the code emits is alarmed or on the dashboard, and nothing there names a
/// metric the code does not emit (a renamed metric would leave an alarm that never fires).
fn check_metrics(t: &Value, emitted: &BTreeSet<String>) -> Vec<String> {
    let (shown, mut p) = shown_metrics(t);
    for m in emitted {
        if !shown.contains(m) {
            p.push(format!(
                "metric {m} is emitted but neither on the dashboard nor alarmed"
            ));
        }
    }
    for m in shown.difference(emitted) {
        p.push(format!(
            "metric {m} is on the dashboard or alarmed, but the code emits no such metric \
             (sparkbridge::telemetry::metrics::Metric)"
        ));
    }
    p
}

/// Alarm names from docs/operations.md's "Alarms" section (first cell of each table row).
fn documented_alarms(doc: &str) -> Vec<String> {
    let mut in_section = false;
    let mut names = Vec::new();
    for line in doc.lines() {
        if line.starts_with('#') {
            in_section = line.trim_start_matches('#').trim().ends_with("Alarms");
            continue;
        }
        if in_section {
            if let Some(rest) = line.strip_prefix("| `") {
                if let Some((name, _)) = rest.split_once('`') {
                    names.push(name.to_string());
                }
            }
        }
    }
    names
}

/// The alarms the runbook describes exist (and no undocumented ones), notify the alarm topic
/// and are on the dashboard's alarm widget.
fn check_alarms(t: &Value, doc: &str) -> Vec<String> {
    let mut p = Vec::new();
    let documented = documented_alarms(doc);
    if documented.is_empty() {
        p.push("docs/operations.md lists no alarms (expected a table under \"Alarms\")".into());
    }
    let in_template: BTreeSet<&str> = of_type(t, "AWS::CloudWatch::Alarm")
        .map(|(id, _)| id)
        .collect();
    for name in &documented {
        if !in_template.contains(name.as_str()) {
            p.push(format!(
                "alarm {name} is documented but not in the template"
            ));
        }
    }
    let body = match of_type(t, "AWS::CloudWatch::Dashboard").next() {
        Some((_, d)) => {
            let mut s = Vec::new();
            strings(&d["Properties"]["DashboardBody"], &mut s);
            s.concat()
        }
        None => String::new(),
    };
    for id in in_template {
        if !documented.iter().any(|d| d == id) {
            p.push(format!(
                "alarm {id} is not documented in docs/operations.md"
            ));
        }
        let a = &t["Resources"][id]["Properties"];
        let topic = list(&a["AlarmActions"])
            .into_iter()
            .filter_map(ref_of)
            .any(|r| is_type(t, r, "AWS::SNS::Topic"));
        if !topic {
            p.push(format!(
                "alarm {id}: AlarmActions do not notify an SNS topic of this stack"
            ));
        }
        if !body.contains(&format!("${{{id}.Arn}}")) {
            p.push(format!("alarm {id} is not on the dashboard's alarm widget"));
        }
    }
    p
}

// =========================================================================================
// The roles: exactly the grants each function's calls need
// =========================================================================================

/// One grant: the condition it sits under (`!C` for an `!If`'s else branch), the action and
/// the resource in its long form.
type Grant = (Option<String>, String, String);

/// A role, the function it runs, and everything it may do: exactly these grants, no more
/// and no fewer. Resources are compared in their long form, so `!Sub ${StateTable.Arn}/index/*`
/// is not `!Sub ${StateTable.Arn}/index/by_deadline`.
struct RoleSpec {
    role: &'static str,
    function: &'static str,
    grants: BTreeSet<Grant>,
}

fn grant(cond: Option<&str>, action: &str, resource: Value) -> Grant {
    (
        cond.map(str::to_owned),
        action.to_owned(),
        compact(&resource),
    )
}

fn role_specs() -> Vec<RoleSpec> {
    use sparkbridge::adapters::dynamodb::INDEX;
    let arn = |id: &str| json!({ "Fn::GetAtt": [id, "Arn"] });
    let index = json!({ "Fn::Sub": format!("${{StateTable.Arn}}/index/{INDEX}") });
    let base = |log_group: &str| {
        vec![
            grant(None, "logs:CreateLogStream", arn(log_group)),
            grant(None, "logs:PutLogEvents", arn(log_group)),
            grant(Some("TracingEnabled"), "xray:PutTraceSegments", json!("*")),
            grant(
                Some("TracingEnabled"),
                "xray:PutTelemetryRecords",
                json!("*"),
            ),
        ]
    };
    let secrets = grant(
        Some("HasSecretsArn"),
        "secretsmanager:GetSecretValue",
        json!({ "Ref": "SecretsArn" }),
    );
    let enqueue = grant(None, "sqs:SendMessage", arn("EventQueue"));
    let table = |action: &str| grant(None, action, arn("StateTable"));
    let ingest = |role, function, log_group| RoleSpec {
        role,
        function,
        grants: base(log_group)
            .into_iter()
            .chain([enqueue.clone(), secrets.clone()])
            .collect(),
    };
    vec![
        ingest(
            "IngestLoopsRole",
            "IngestLoopsFunction",
            "IngestLoopsLogGroup",
        ),
        ingest(
            "IngestEsputnikRole",
            "IngestEsputnikFunction",
            "IngestEsputnikLogGroup",
        ),
        ingest(
            "IngestSparkloopRole",
            "IngestSparkloopFunction",
            "IngestSparkloopLogGroup",
        ),
        RoleSpec {
            role: "WorkerRole",
            function: "WorkerFunction",
            // every worker access to the table is by key: no Query, no index
            grants: base("WorkerLogGroup")
                .into_iter()
                .chain(
                    [
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:GetQueueAttributes",
                        "sqs:ChangeMessageVisibility",
                    ]
                    .map(|a| grant(None, a, arn("EventQueue"))),
                )
                .chain([grant(None, "sqs:SendMessage", arn("DeadLetterQueue"))])
                .chain(
                    [
                        "dynamodb:GetItem",
                        "dynamodb:PutItem",
                        "dynamodb:UpdateItem",
                        "dynamodb:DeleteItem",
                    ]
                    .map(table),
                )
                .chain([secrets.clone()])
                .collect(),
        },
        RoleSpec {
            role: "ScreenerRole",
            function: "ScreenerFunction",
            grants: base("ScreenerLogGroup")
                .into_iter()
                .chain([enqueue.clone()])
                .chain(["dynamodb:GetItem", "dynamodb:UpdateItem"].map(table))
                .chain([grant(None, "dynamodb:Query", index.clone())])
                .collect(),
        },
        RoleSpec {
            role: "ReconcilerRole",
            function: "ReconcilerFunction",
            grants: base("ReconcilerLogGroup")
                .into_iter()
                .chain([enqueue.clone()])
                .chain(
                    [
                        "dynamodb:GetItem",
                        "dynamodb:PutItem",
                        "dynamodb:DeleteItem",
                    ]
                    .map(table),
                )
                .chain([grant(None, "dynamodb:Query", index), secrets])
                .collect(),
        },
    ]
}

/// The conditions the allow-list's grants sit under, as they must be defined.
fn grant_conditions() -> [(&'static str, Value); 2] {
    [
        (
            "TracingEnabled",
            json!({ "Fn::Equals": [{ "Ref": "EnableTracing" }, "true"] }),
        ),
        (
            "HasSecretsArn",
            json!({ "Fn::Not": [{ "Fn::Equals": [{ "Ref": "SecretsArn" }, ""] }] }),
        ),
    ]
}

/// Every role is in the allow-list, runs its function, and holds exactly the grants listed;
/// a statement has no Condition, NotAction, NotResource or Principal to widen or blur it.
fn check_role_allow_list(t: &Value, specs: &[RoleSpec]) -> Vec<String> {
    let mut p = Vec::new();
    let roles: BTreeSet<&str> = of_type(t, "AWS::IAM::Role").map(|(id, _)| id).collect();
    for rid in &roles {
        if !specs.iter().any(|s| s.role == *rid) {
            p.push(format!(
                "role {rid} is not in the allow-list of tests/it/template.rs"
            ));
        }
    }
    for (name, want) in grant_conditions() {
        if t["Conditions"].get(name) != Some(&want) {
            p.push(format!(
                "condition {name} is {}, expected {}",
                t["Conditions"].get(name).map_or("missing".into(), compact),
                compact(&want)
            ));
        }
    }
    for spec in specs {
        let rid = spec.role;
        let Some(role) = resource(t, rid).filter(|_| roles.contains(rid)) else {
            p.push(format!("no role {rid}"));
            continue;
        };
        let f = &t["Resources"][spec.function];
        if role_of(f) != Some(rid) {
            p.push(format!("{}: Role must be !GetAtt {rid}.Arn", spec.function));
        }
        let mut got: BTreeSet<Grant> = BTreeSet::new();
        for s in role_statements(role) {
            if let Some(stmt) = s.stmt.as_object() {
                for key in stmt.keys() {
                    if !["Sid", "Effect", "Action", "Resource"].contains(&key.as_str()) {
                        p.push(format!(
                            "{rid}: a statement has {key} (only Sid, Effect, Action and \
                             Resource are allowed)"
                        ));
                    }
                }
            }
            if s.stmt["Effect"] != "Allow" {
                continue;
            }
            for a in list(&s.stmt["Action"]) {
                for r in list(&s.stmt["Resource"]) {
                    got.insert((s.condition.clone(), compact(a), compact(r)));
                }
            }
        }
        let show = |g: &Grant| match &g.0 {
            Some(c) => format!("{} on {} (under {c})", g.1, g.2),
            None => format!("{} on {}", g.1, g.2),
        };
        for extra in got.difference(&spec.grants) {
            p.push(format!(
                "{rid}: grant {} is not in the allow-list",
                show(extra)
            ));
        }
        for missing in spec.grants.difference(&got) {
            p.push(format!("{rid}: missing grant {}", show(missing)));
        }
    }
    p
}

// =========================================================================================
// Queues, secrets, schedules, the API, the custom domain
// =========================================================================================

/// An environment variable of a function, falling back to `Globals`.
fn env_var<'a>(t: &'a Value, f: &'a Value, name: &str) -> Option<&'a Value> {
    f["Properties"]["Environment"]["Variables"]
        .get(name)
        .or_else(|| t["Globals"]["Function"]["Environment"]["Variables"].get(name))
}

/// Both queues take the message size the code assumes, and the functions learn the same size.
/// (Encryption and the TLS-only policy are cfn-lint's E9121 and E9122.)
fn check_queue_sizes(t: &Value) -> Vec<String> {
    use sparkbridge::adapters::sqs::DEFAULT_MAX_MESSAGE_BYTES;
    let mut p = Vec::new();
    for q in ["EventQueue", "DeadLetterQueue"] {
        let size = number(t["Resources"][q]["Properties"].get("MaximumMessageSize"));
        if size != Some(DEFAULT_MAX_MESSAGE_BYTES as f64) {
            p.push(format!(
                "{q}: MaximumMessageSize is {size:?}, not the code's MAX_MESSAGE_BYTES \
                 default {DEFAULT_MAX_MESSAGE_BYTES}"
            ));
        }
    }
    for (fid, f) in functions(t) {
        let got = env_var(t, f, "MAX_MESSAGE_BYTES").map(compact);
        if got != Some(DEFAULT_MAX_MESSAGE_BYTES.to_string()) {
            p.push(format!(
                "{fid}: MAX_MESSAGE_BYTES is {got:?}, not the queues' {DEFAULT_MAX_MESSAGE_BYTES}"
            ));
        }
    }
    p
}

/// Each secret's environment variable, its NoEcho parameter, and the only functions that
/// may hold it.
const SECRET_ENV: [(&str, &str, &[&str]); 8] = [
    (
        "LOOPS_SIGNING_SECRET",
        "LoopsSigningSecret",
        &["IngestLoopsFunction"],
    ),
    (
        "ESPUTNIK_WEBHOOK_USER",
        "EsputnikWebhookUser",
        &["IngestEsputnikFunction"],
    ),
    (
        "ESPUTNIK_WEBHOOK_PASSWORD",
        "EsputnikWebhookPassword",
        &["IngestEsputnikFunction"],
    ),
    (
        "ESPUTNIK_WEBHOOK_TOKEN",
        "EsputnikWebhookToken",
        &["IngestEsputnikFunction"],
    ),
    (
        "SPARKLOOP_WEBHOOK_TOKEN",
        "SparkloopWebhookToken",
        &["IngestSparkloopFunction"],
    ),
    (
        "SPARKLOOP_API_KEY",
        "SparkloopApiKey",
        &["WorkerFunction", "ReconcilerFunction"],
    ),
    (
        "LOOPS_API_KEY",
        "LoopsApiKey",
        &["WorkerFunction", "ReconcilerFunction"],
    ),
    (
        "ESPUTNIK_API_KEY",
        "EsputnikApiKey",
        &["WorkerFunction", "ReconcilerFunction"],
    ),
];

/// The functions that read a secret, and so may read SecretsArn.
fn secret_readers() -> BTreeSet<&'static str> {
    SECRET_ENV
        .iter()
        .flat_map(|(_, _, f)| f.iter().copied())
        .collect()
}

/// Every place in `v` that names parameter `name` (`!Ref name` or `${name}` in a `!Sub`),
/// as JSON pointers.
fn references(v: &Value, name: &str, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if m.get("Ref").and_then(Value::as_str) == Some(name)
                || sub_string(v).is_some_and(|s| s.contains(&format!("${{{name}}}")))
            {
                out.push(at.to_string());
            }
            for (k, x) in m {
                references(x, name, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                references(x, name, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Each secret reaches only its own functions, and nothing else in the stack names it; the
/// functions that read a secret (and only they) learn SecretsArn and its TTL.
fn check_secret_placement(t: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let env = |fid: &str, var: &str| {
        t["Resources"][fid]["Properties"]["Environment"]["Variables"]
            .get(var)
            .cloned()
    };
    let fids: Vec<&str> = functions(t).into_iter().map(|(id, _)| id).collect();
    for (var, param, allowed) in SECRET_ENV {
        if t["Globals"]["Function"]["Environment"]["Variables"]
            .get(var)
            .is_some()
        {
            p.push(format!("Globals: {var} would reach every function"));
        }
        for fid in &fids {
            match (allowed.contains(fid), env(fid, var)) {
                (true, Some(v)) if ref_of(&v) == Some(param) => {}
                (true, _) => p.push(format!("{fid}: {var} is not !Ref {param}")),
                (false, Some(_)) => p.push(format!(
                    "{fid}: has {var}, a secret that belongs only to {allowed:?}"
                )),
                (false, None) => {}
            }
        }
        let allowed_at: Vec<String> = allowed
            .iter()
            .map(|f| format!("/Resources/{f}/Properties/Environment/Variables/{var}"))
            .collect();
        let mut found = Vec::new();
        for section in ["Globals", "Resources", "Outputs", "Conditions"] {
            references(&t[section], param, &format!("/{section}"), &mut found);
        }
        for at in found {
            if !allowed_at.contains(&at) {
                p.push(format!("{at}: names secret parameter {param}"));
            }
        }
    }
    let readers = secret_readers();
    for (var, param) in [
        ("SECRETS_ARN", "SecretsArn"),
        ("SECRETS_TTL_SECS", "SecretsTtlSecs"),
    ] {
        let want =
            json!({ "Fn::If": ["HasSecretsArn", { "Ref": param }, { "Ref": "AWS::NoValue" }] });
        for fid in &fids {
            match (readers.contains(fid), env(fid, var)) {
                (true, Some(v)) if v == want => {}
                (true, got) => p.push(format!(
                    "{fid}: {var} is {}, expected !If [HasSecretsArn, !Ref {param}, !Ref AWS::NoValue]",
                    got.as_ref().map_or("missing".into(), compact)
                )),
                (false, Some(_)) => {
                    p.push(format!("{fid}: gets {var} but reads no secret"))
                }
                (false, None) => {}
            }
        }
    }
    let arn = &t["Parameters"]["SecretsArn"];
    if arn["Type"] != "String" || arn["Default"] != "" {
        p.push("parameter SecretsArn: must be a String defaulting to \"\"".into());
    }
    match arn["AllowedPattern"]
        .as_str()
        .map(|pat| pattern_samples(pat, 200))
    {
        None => p.push("parameter SecretsArn: no AllowedPattern".into()),
        Some(Err(e)) => p.push(format!("parameter SecretsArn: AllowedPattern: {e}")),
        Some(Ok(samples)) => {
            for s in samples {
                if s.contains(['*', '?']) || !s.contains(":secretsmanager:") {
                    p.push(format!(
                        "parameter SecretsArn: AllowedPattern admits {s:?}, not one secret's ARN"
                    ));
                    break;
                }
            }
        }
    }
    let ttl = &t["Parameters"]["SecretsTtlSecs"];
    if ttl["Type"] != "Number" || number(ttl.get("Default")) != Some(300.0) {
        p.push("parameter SecretsTtlSecs: must be a Number defaulting to 300".into());
    }
    p
}

/// Strings an AllowedPattern admits (besides the empty string of a leading `^$|`), drawn
/// deterministically. CloudFormation matches the whole value, so the pattern's outer
/// anchors are dropped.
fn pattern_samples(pattern: &str, n: usize) -> Result<Vec<String>, String> {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    let body = pattern.strip_prefix("^$|").unwrap_or(pattern);
    let body = body.strip_prefix('^').unwrap_or(body);
    let body = body.strip_suffix('$').unwrap_or(body);
    let strategy = proptest::string::string_regex(body).map_err(|e| e.to_string())?;
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .map(|tree| tree.current())
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The shortest time between two runs of an EventBridge schedule expression, when it can be
/// told: `rate(N unit)` exactly; a `cron(...)` whose minutes field is one number runs at
/// most hourly, any other at most every minute. None when it is not an expression.
fn min_interval_secs(expr: &str) -> Option<u64> {
    if let Some(rate) = expr.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        let (n, unit) = rate.split_once(' ')?;
        if n.starts_with('0') || !n.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let n: u64 = n.parse().ok()?;
        let secs = match (n == 1, unit) {
            (true, "minute") | (false, "minutes") => 60,
            (true, "hour") | (false, "hours") => 3600,
            (true, "day") | (false, "days") => 86_400,
            _ => return None,
        };
        return Some(n * secs);
    }
    let cron = expr.strip_prefix("cron(")?.strip_suffix(')')?;
    let fields: Vec<&str> = cron.split(' ').collect();
    if fields.len() != 6 || fields.iter().any(|f| f.is_empty()) {
        return None;
    }
    let one_minute = fields[0].len() <= 2
        && fields[0].chars().all(|c| c.is_ascii_digit())
        && fields[0].parse::<u8>().is_ok_and(|m| m < 60);
    Some(if one_minute { 3600 } else { 60 })
}

/// Scheduled runs are never retried (by EventBridge or by Lambda's asynchronous retries),
/// and never overlap: a schedule runs no more often than its function's Timeout, and the
/// reconcile schedule parameter admits only such schedules.
fn check_schedules(t: &Value) -> Vec<String> {
    let mut p = Vec::new();
    for (fid, f) in functions(t) {
        let schedules: Vec<(&str, &Value)> = events(f, "Schedule")
            .chain(events(f, "ScheduleV2"))
            .collect();
        if schedules.is_empty() {
            continue;
        }
        if number(f["Properties"]["EventInvokeConfig"].get("MaximumRetryAttempts")) != Some(0.0) {
            p.push(format!(
                "{fid}: EventInvokeConfig.MaximumRetryAttempts must be 0 (Lambda retries a \
                 failed scheduled run twice, overlapping the next)"
            ));
        }
        let timeout = number(fn_prop(t, f, "Timeout")).unwrap_or(3.0);
        for (name, e) in schedules {
            if number(e["RetryPolicy"].get("MaximumRetryAttempts")) != Some(0.0) {
                p.push(format!(
                    "{fid}.{name}: RetryPolicy.MaximumRetryAttempts must be 0"
                ));
            }
            let expr = match (&e["Schedule"], &e["ScheduleExpression"]) {
                (Value::String(s), _) | (_, Value::String(s)) => s.clone(),
                (v, _) => ref_of(v)
                    .and_then(|r| t["Parameters"][r]["Default"].as_str())
                    .unwrap_or_default()
                    .to_string(),
            };
            match min_interval_secs(&expr) {
                Some(secs) if secs as f64 >= timeout => {}
                other => p.push(format!(
                    "{fid}.{name}: schedule {expr:?} (every {other:?} s) may start a run while \
                     the last one (Timeout {timeout} s) is still going"
                )),
            }
        }
    }
    for fid in ["ScreenerFunction", "ReconcilerFunction"] {
        let f = &t["Resources"][fid];
        if events(f, "Schedule")
            .chain(events(f, "ScheduleV2"))
            .next()
            .is_none()
        {
            p.push(format!("{fid}: no schedule"));
        }
    }
    let f = &t["Resources"]["ReconcilerFunction"];
    let scheduled_by_param = events(f, "Schedule")
        .chain(events(f, "ScheduleV2"))
        .any(|(_, e)| ref_of(&e["Schedule"]) == Some("ReconcileSchedule"));
    if !scheduled_by_param {
        p.push("ReconcilerFunction: its schedule is not !Ref ReconcileSchedule".into());
    }
    let timeout = number(fn_prop(t, f, "Timeout")).unwrap_or(3.0);
    let param = &t["Parameters"]["ReconcileSchedule"];
    if !param["Description"]
        .as_str()
        .is_some_and(|d| d.contains("overlap"))
    {
        p.push(
            "parameter ReconcileSchedule: its Description must say why runs may not overlap".into(),
        );
    }
    match param["AllowedPattern"].as_str() {
        None => p.push(
            "parameter ReconcileSchedule: no AllowedPattern (a schedule shorter than the \
             reconciler's Timeout would overlap runs on one checkpoint)"
                .into(),
        ),
        Some(pattern) => match pattern_samples(pattern, 300) {
            Err(e) => p.push(format!("parameter ReconcileSchedule: AllowedPattern: {e}")),
            Ok(samples) => {
                if let Some(bad) = samples.iter().find(|s| {
                    min_interval_secs(s).is_none_or(|secs| (secs as f64) < timeout.max(3600.0))
                }) {
                    p.push(format!(
                        "parameter ReconcileSchedule: AllowedPattern admits {bad:?}, which is \
                         not hourly or coarser (the reconciler's Timeout is {timeout} s)"
                    ));
                }
            }
        },
    }
    p
}

/// The catch-all `ANY` routes (the function answers them 405) have throttling of their own,
/// below the default route's, and RouteSettings names only the routes. (The default route's
/// throttling and the access log are cfn-lint's E9141 and E9142.)
fn check_route_throttling(t: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let api = &t["Resources"]["HttpApi"]["Properties"];
    let limits = |s: &Value| {
        Some((
            number(s.get("ThrottlingBurstLimit")).filter(|n| *n > 0.0)?,
            number(s.get("ThrottlingRateLimit")).filter(|n| *n > 0.0)?,
        ))
    };
    let (burst, rate) = limits(&api["DefaultRouteSettings"]).unwrap_or((f64::MAX, f64::MAX));
    for (method, path, _) in ROUTES.iter().filter(|(m, _, _)| *m == "ANY") {
        let key = format!("{method} {path}");
        match api["RouteSettings"].get(&key).and_then(limits) {
            None => p.push(format!(
                "HttpApi: RouteSettings has no throttling of its own for {key:?}"
            )),
            Some((b, r)) if b >= burst || r >= rate => p.push(format!(
                "HttpApi: {key:?} is throttled at burst {b} / rate {r}, not below the \
                 default route's {burst} / {rate}"
            )),
            Some(_) => {}
        }
    }
    for key in api["RouteSettings"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        if !ROUTES.iter().any(|(m, pa, _)| format!("{m} {pa}") == *key) {
            p.push(format!("HttpApi: RouteSettings names {key:?}, not a route"));
        }
    }
    p
}

/// Every log group keeps its logs for `LogRetentionDays`, the parameter docs/operations.md
/// documents for them. (That each has a retention at all is cfn-lint's E9132.)
fn check_log_retention_parameter(t: &Value) -> Vec<String> {
    of_type(t, "AWS::Logs::LogGroup")
        .filter(|(_, g)| ref_of(&g["Properties"]["RetentionInDays"]) != Some("LogRetentionDays"))
        .map(|(id, _)| format!("{id}: RetentionInDays is not !Ref LogRetentionDays"))
        .collect()
}

/// The optional custom domain: nothing exists while DomainName is empty; the domain maps to
/// the HTTP API's stage with a regional endpoint; the Route 53 alias exists only with a zone;
/// the webhook URL outputs follow it. (Its TLS policy is cfn-lint's E9143.)
fn check_custom_domain(t: &Value) -> Vec<String> {
    let mut p = Vec::new();
    for name in ["DomainName", "CertificateArn", "HostedZoneId"] {
        let param = &t["Parameters"][name];
        if param["Type"] != "String" || param["Default"] != "" {
            p.push(format!(
                "parameter {name}: must be a String defaulting to \"\" (the domain is optional)"
            ));
        }
    }
    let not_empty = |name: &str| json!({ "Fn::Not": [{ "Fn::Equals": [{ "Ref": name }, ""] }] });
    let conditions = [
        ("HasDomainName", not_empty("DomainName")),
        (
            "HasHostedZone",
            json!({ "Fn::And": [{ "Condition": "HasDomainName" }, not_empty("HostedZoneId")] }),
        ),
    ];
    for (name, want) in &conditions {
        if t["Conditions"].get(*name) != Some(want) {
            p.push(format!(
                "condition {name} is {}, expected {}",
                t["Conditions"].get(*name).map_or("missing".into(), compact),
                compact(want)
            ));
        }
    }
    let certificate_rule = t["Rules"].as_object().into_iter().flatten().any(|(_, r)| {
        r["RuleCondition"] == not_empty("DomainName")
            && list(&r["Assertions"])
                .iter()
                .any(|a| a["Assert"] == not_empty("CertificateArn"))
    });
    if !certificate_rule {
        p.push("Rules: nothing requires CertificateArn when DomainName is set".into());
    }
    let condition = |r: &Value| r["Condition"].as_str().map(str::to_owned);
    let domains: Vec<(&str, &Value)> = of_type(t, "AWS::ApiGatewayV2::DomainName").collect();
    if domains.len() != 1 {
        p.push(format!(
            "expected one AWS::ApiGatewayV2::DomainName, found {}",
            domains.len()
        ));
    }
    for (id, d) in &domains {
        let props = &d["Properties"];
        if condition(d).as_deref() != Some("HasDomainName") {
            p.push(format!("{id}: Condition must be HasDomainName"));
        }
        if ref_of(&props["DomainName"]) != Some("DomainName") {
            p.push(format!("{id}: DomainName is not !Ref DomainName"));
        }
        let cfg = list(&props["DomainNameConfigurations"]);
        let good = cfg.len() == 1
            && ref_of(&cfg[0]["CertificateArn"]) == Some("CertificateArn")
            && cfg[0]["EndpointType"] == "REGIONAL";
        if !good {
            p.push(format!(
                "{id}: DomainNameConfigurations must be one REGIONAL endpoint with !Ref \
                 CertificateArn"
            ));
        }
    }
    let domain_id = domains
        .first()
        .map(|(id, _)| *id)
        .unwrap_or("ApiDomainName");
    let mappings: Vec<(&str, &Value)> = of_type(t, "AWS::ApiGatewayV2::ApiMapping").collect();
    if mappings.len() != 1 {
        p.push(format!(
            "expected one AWS::ApiGatewayV2::ApiMapping, found {}",
            mappings.len()
        ));
    }
    for (id, m) in &mappings {
        let props = &m["Properties"];
        if condition(m).as_deref() != Some("HasDomainName")
            || ref_of(&props["DomainName"]) != Some(domain_id)
            || ref_of(&props["ApiId"]) != Some("HttpApi")
            || ref_of(&props["Stage"]) != Some("HttpApi.Stage")
            || props.get("ApiMappingKey").is_some()
        {
            p.push(format!(
                "{id}: must map !Ref {domain_id} to !Ref HttpApi, stage !Ref HttpApi.Stage, \
                 at the root, under Condition HasDomainName"
            ));
        }
    }
    let records: Vec<(&str, &Value)> = of_type(t, "AWS::Route53::RecordSet").collect();
    if records.len() != 1 {
        p.push(format!(
            "expected one AWS::Route53::RecordSet, found {}",
            records.len()
        ));
    }
    for (id, r) in &records {
        let props = &r["Properties"];
        let alias = &props["AliasTarget"];
        if condition(r).as_deref() != Some("HasHostedZone")
            || ref_of(&props["HostedZoneId"]) != Some("HostedZoneId")
            || ref_of(&props["Name"]) != Some("DomainName")
            || props["Type"] != "A"
            || getatt(&alias["DNSName"]) != Some((domain_id, "RegionalDomainName"))
            || getatt(&alias["HostedZoneId"]) != Some((domain_id, "RegionalHostedZoneId"))
        {
            p.push(format!(
                "{id}: must be the A alias of DomainName to {domain_id}'s regional target, in \
                 !Ref HostedZoneId, under Condition HasHostedZone"
            ));
        }
    }
    for (output, path) in [
        ("LoopsWebhookUrl", "/webhooks/loops"),
        ("EsputnikWebhookUrl", "/webhooks/esputnik"),
        ("SparkloopWebhookUrl", "/webhooks/sparkloop"),
    ] {
        let want = json!({ "Fn::If": [
            "HasDomainName",
            { "Fn::Sub": format!("https://${{DomainName}}{path}") },
            { "Fn::Sub": format!("https://${{HttpApi}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}{path}") },
        ] });
        if t["Outputs"][output]["Value"] != want {
            p.push(format!(
                "output {output}: must be !If [HasDomainName, https://<DomainName>{path}, \
                 the execute-api URL], got {}",
                compact(&t["Outputs"][output]["Value"])
            ));
        }
    }
    p
}

// =========================================================================================
// The dashboard: every function, the alarms' own thresholds
// =========================================================================================

/// The dashboard's per-function widgets (title prefix, the AWS/Lambda metric they chart):
/// each has a row for every function.
const FUNCTION_WIDGETS: [(&str, &str); 2] =
    [("Lambda errors", "Errors"), ("Lambda duration", "Duration")];

fn check_dashboard_coverage(t: &Value) -> Vec<String> {
    let body = match dashboard_with(t, true) {
        Ok(b) => b,
        Err(e) => return vec![e],
    };
    let mut p = Vec::new();
    for (title, metric) in FUNCTION_WIDGETS {
        let widgets: Vec<&Value> = list(&body["widgets"])
            .into_iter()
            .filter(|w| {
                w["properties"]["title"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(title))
            })
            .collect();
        let [widget] = widgets.as_slice() else {
            p.push(format!(
                "dashboard: expected one widget titled {title:?}, found {}",
                widgets.len()
            ));
            continue;
        };
        let shown: BTreeSet<String> = metric_rows(widget)
            .into_iter()
            .filter_map(|row| match row.as_slice() {
                [ns, m, dim, value, ..]
                    if ns == "AWS/Lambda" && m == metric && dim == "FunctionName" =>
                {
                    Some(value.clone())
                }
                _ => None,
            })
            .collect();
        for (fid, _) in functions(t) {
            if !shown.contains(&format!("${{{fid}}}")) {
                p.push(format!(
                    "dashboard: widget {title:?} has no AWS/Lambda {metric} row for {fid}"
                ));
            }
        }
    }
    p
}

/// Every alarm is drawn as a threshold line on the dashboard (an annotation whose label
/// names it), at the alarm's own threshold: the same parameter (`${Param}`) when the alarm
/// uses one, the same number otherwise.
fn check_dashboard_thresholds(t: &Value) -> Vec<String> {
    let body = match dashboard_with(t, true) {
        Ok(b) => b,
        Err(e) => return vec![e],
    };
    let alarms: BTreeMap<&str, &Value> = of_type(t, "AWS::CloudWatch::Alarm")
        .map(|(id, a)| (id, &a["Properties"]["Threshold"]))
        .collect();
    let mut p = Vec::new();
    let mut drawn = BTreeSet::new();
    for w in list(&body["widgets"]) {
        for a in list(&w["properties"]["annotations"]["horizontal"]) {
            let label = a["label"].as_str().unwrap_or_default();
            for word in label.split(|c: char| !c.is_ascii_alphanumeric()) {
                let Some(threshold) = alarms.get(word) else {
                    continue;
                };
                drawn.insert(word);
                let want = match ref_of(threshold) {
                    Some(param) => json!(format!("${{{param}}}")),
                    None => json!(number(Some(threshold))),
                };
                let got = match &a["value"] {
                    Value::String(s) => json!(s),
                    other => json!(number(Some(other))),
                };
                if got != want {
                    p.push(format!(
                        "dashboard: the {label:?} line is at {}, alarm {word} fires above {}",
                        compact(&got),
                        compact(&want)
                    ));
                }
            }
        }
    }
    for id in alarms.keys() {
        if !drawn.contains(id) {
            p.push(format!(
                "dashboard: no threshold line (annotation) names alarm {id}"
            ));
        }
    }
    p
}

// =========================================================================================
// docs/operations.md: guardrails, secret holders, log groups, parameter groups
// =========================================================================================

/// What docs/operations.md must say about each guardrail the template has.
const GUARDRAIL_DOCS: [(&str, &str); 12] = [
    (
        "`DeletionProtectionEnabled: true`",
        "the state table's deletion protection",
    ),
    ("`MaximumRetryAttempts: 0`", "no retries of scheduled runs"),
    (
        "`MaximumConcurrency`",
        "the worker's event source concurrency cap",
    ),
    ("`DefaultRouteSettings`", "the API's throttling"),
    (
        "`RouteSettings`",
        "the catch-all ANY routes' own throttling",
    ),
    (
        "/aws/vendedlogs/apigateway/<stack>-http-api",
        "the API access log",
    ),
    ("`SqsManagedSseEnabled`", "queue encryption"),
    ("`aws:SecureTransport`", "the queues' TLS-only policy"),
    ("`MaximumMessageSize`", "the queues' message size"),
    ("`secretsmanager:GetSecretValue`", "the SecretsArn grant"),
    ("--no-enabled", "the kill switch"),
    ("cargo install --locked --path cli", "installing the CLI"),
];

fn check_guardrail_docs(doc: &str) -> Vec<String> {
    GUARDRAIL_DOCS
        .iter()
        .filter(|(needle, _)| !doc.contains(needle))
        .map(|(needle, what)| format!("docs/operations.md does not describe {what} ({needle})"))
        .collect()
}

/// The body of a docs section, from its heading (`## 2. Secrets`) to the next heading of the
/// same or a higher level.
fn doc_section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let Some(start) = doc.find(heading) else {
        return "";
    };
    let level = heading.chars().take_while(|c| *c == '#').count();
    let rest = &doc[start + heading.len()..];
    let end = rest
        .match_indices("\n#")
        .find(|(i, _)| rest[i + 1..].chars().take_while(|c| *c == '#').count() <= level)
        .map_or(rest.len(), |(i, _)| i);
    &rest[..end]
}

/// docs/operations.md names the functions the template gives each secret (section 2) and
/// every function's log group (5.3).
fn check_docs_match_functions(t: &Value, doc: &str) -> Vec<String> {
    let mut p = Vec::new();
    let bins: BTreeMap<&str, &str> = functions(t)
        .into_iter()
        .filter_map(|(fid, f)| Some((fid, binary(f)?)))
        .collect();
    let secrets = doc_section(doc, "## 2. Secrets");
    for (var, _, _) in SECRET_ENV {
        let actual: BTreeSet<&str> = functions(t)
            .into_iter()
            .filter(|(_, f)| {
                f["Properties"]["Environment"]["Variables"]
                    .get(var)
                    .is_some()
            })
            .filter_map(|(fid, _)| bins.get(fid).copied())
            .collect();
        let mut documented = BTreeSet::new();
        for line in secrets.lines() {
            let Some((who, what)) = line
                .trim_start()
                .strip_prefix("- ")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            if what.contains(&format!("`{var}`")) {
                for bin in bins.values() {
                    if who.split([' ', ',']).any(|w| w == *bin) {
                        documented.insert(*bin);
                    }
                }
            }
        }
        if documented != actual {
            p.push(format!(
                "docs/operations.md (2. Secrets) gives {var} to {documented:?}, the template to \
                 {actual:?}"
            ));
        }
    }
    let logs = doc_section(doc, "### 5.3");
    let groups = logs
        .split("Log groups:")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .unwrap_or_default();
    for bin in bins.values() {
        if !groups.contains(&format!("-{bin}`")) {
            p.push(format!(
                "docs/operations.md (5.3 Log groups) does not list the {bin} log group"
            ));
        }
    }
    p
}

// =========================================================================================
// Workspace facts
// =========================================================================================

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Package names under functions/ (each is one binary).
fn workspace_bins() -> BTreeSet<String> {
    let mut bins = BTreeSet::new();
    for entry in std::fs::read_dir(workspace().join("functions")).expect("functions/") {
        let manifest = entry.expect("dir entry").path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix("name") {
                if let Some(name) = rest.trim().strip_prefix('=') {
                    bins.insert(name.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    bins
}

// =========================================================================================
// Tests: the real template passes every check
// =========================================================================================

/// The text of the template under test (see the module comment).
fn template_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let path = std::env::var_os("SPARKBRIDGE_TEMPLATE")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("template.yaml"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    })
}

fn real() -> Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    PARSED.get_or_init(|| parse(template_text())).clone()
}

/// Settings a deployed function reads that must reach it from a stack parameter: without
/// the wiring, the documented switch exists only for local runs.
const WIRED: &[(&str, &[(&str, &str)])] = &[
    (
        "WorkerFunction",
        &[
            ("DETECT_EMAIL_CHANGES", "DetectEmailChanges"),
            ("DRY_RUN", "DryRun"),
            ("RETRY_BASE_DELAY_SECS", "RetryBaseDelaySecs"),
            ("RETRY_MAX_DELAY_SECS", "RetryMaxDelaySecs"),
            ("RETRY_WINDOW_SECS", "RetryWindowSecs"),
            ("MAX_ATTEMPTS", "MaxAttempts"),
            ("REDRIVE_MAX_RECEIVE_COUNT", "RedriveMaxReceiveCount"),
            ("CONFIRM_SIGNUPS", "ConfirmSignups"),
            ("WORKER_MAX_CONCURRENCY", "WorkerMaxConcurrency"),
        ],
    ),
    (
        "ScreenerFunction",
        &[("SCREENING_DRY_RUN", "ScreeningDryRun")],
    ),
    (
        "ReconcilerFunction",
        &[
            ("RECONCILE_DRY_RUN", "ReconcileDryRun"),
            ("WORKER_MAX_CONCURRENCY", "WorkerMaxConcurrency"),
            (
                "RECONCILE_MAX_UNSUBSCRIBE_SHARE",
                "ReconcileMaxUnsubscribeShare",
            ),
        ],
    ),
];

fn check_wiring(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (function, vars) in WIRED {
        let env = &t["Resources"][*function]["Properties"]["Environment"]["Variables"];
        for (var, param) in *vars {
            if ref_of(&env[*var]) != Some(*param) {
                problems.push(format!("{function}: {var} is not !Ref {param}"));
            }
            if t["Parameters"][*param].is_null() {
                problems.push(format!("no parameter {param}"));
            }
        }
    }
    problems
}

/// The API URL parameters default to what the clients default to: the host, without the
/// version path the clients append (a doubled `/v2/v2` answers 404, read as "not a
/// subscriber": calls lost without an error).
fn check_api_defaults(t: &Value) -> Vec<String> {
    use sparkbridge::adapters::{esp, sparkloop};
    let mut problems = Vec::new();
    for (param, want) in [
        ("SparkloopApiUrl", sparkloop::DEFAULT_API_URL),
        ("LoopsApiUrl", esp::DEFAULT_LOOPS_URL),
        ("EsputnikApiUrl", esp::DEFAULT_ESPUTNIK_URL),
    ] {
        let got = t["Parameters"][param]["Default"].as_str();
        if got != Some(want) {
            problems.push(format!(
                "{param} defaults to {got:?}, the client to {want:?}"
            ));
        }
    }
    problems
}

/// A numeric property of a parameter (`Default`, `MinValue`, `MaxValue`) as an integer.
fn param_u64(t: &Value, name: &str, key: &str) -> Result<u64, String> {
    number(t["Parameters"][name].get(key))
        .filter(|n| *n >= 0.0 && n.fract() == 0.0)
        .map(|n| n as u64)
        .ok_or_else(|| format!("parameter {name}: no whole-number {key}"))
}

/// The redrive count the worker's rule asks for, uncapped: `ceil(4 × window / cap) + 50`, and
/// at least `MaxAttempts + 2`.
fn redrive_needed(window_secs: u64, cap_secs: u64, max_attempts: u64) -> u64 {
    (4 * window_secs)
        .div_ceil(cap_secs.max(1))
        .saturating_add(50)
        .max(max_attempts.saturating_add(2))
}

/// The retry window, the attempt limit and the redrive count agree with the worker
/// (`RetryBudget::redrive_count`): SQS never moves a message to the DLQ while it is still
/// inside its window, the window ends inside the queue's retention, and the worker learns
/// the queue's redrive count so it parks the last receive itself, with its error.
fn check_retry_budget(t: &Value) -> Vec<String> {
    use sparkbridge::core::backoff::{
        BackoffPolicy, RetryBudget, DEFAULT_RETRY_WINDOW_SECS, MAX_RETRY_WINDOW_SECS,
        SQS_MAX_RECEIVE_COUNT,
    };
    let read = || -> Result<[u64; 10], String> {
        Ok([
            param_u64(t, "RetryWindowSecs", "Default")?,
            param_u64(t, "RetryWindowSecs", "MinValue")?,
            param_u64(t, "RetryWindowSecs", "MaxValue")?,
            param_u64(t, "RetryBaseDelaySecs", "Default")?,
            param_u64(t, "RetryMaxDelaySecs", "Default")?,
            param_u64(t, "RetryMaxDelaySecs", "MaxValue")?,
            param_u64(t, "MaxAttempts", "Default")?,
            param_u64(t, "MaxAttempts", "MinValue")?,
            param_u64(t, "RedriveMaxReceiveCount", "Default")?,
            param_u64(t, "RedriveMaxReceiveCount", "MinValue")?,
        ])
    };
    let [window, window_min, window_max, base, cap, cap_max, attempts, attempts_min, redrive, redrive_min] =
        match read() {
            Ok(v) => v,
            Err(e) => return vec![e],
        };
    let mut p = Vec::new();
    if window != DEFAULT_RETRY_WINDOW_SECS {
        p.push(format!(
            "parameter RetryWindowSecs: Default {window} is not the worker's default \
             {DEFAULT_RETRY_WINDOW_SECS}"
        ));
    }
    if window_min < 1 || window_max > MAX_RETRY_WINDOW_SECS {
        p.push(format!(
            "parameter RetryWindowSecs: MinValue {window_min} / MaxValue {window_max} must stay \
             within 1..={MAX_RETRY_WINDOW_SECS}, the range the worker accepts"
        ));
    }
    for queue in ["EventQueue", "DeadLetterQueue"] {
        let retention = number(t["Resources"][queue]["Properties"].get("MessageRetentionPeriod"))
            .unwrap_or(345_600.0);
        if window_max as f64 >= retention {
            p.push(format!(
                "parameter RetryWindowSecs: MaxValue {window_max} is not below {queue}'s \
                 MessageRetentionPeriod {retention}: SQS would delete messages still retrying"
            ));
        }
    }
    if attempts != 0 || attempts_min != 0 {
        p.push(format!(
            "parameter MaxAttempts: Default {attempts} and MinValue {attempts_min} must be 0 \
             (no count limit: the retry window decides)"
        ));
    }
    let needed = redrive_needed(window, cap, attempts);
    let by_code = RetryBudget {
        window_secs: window,
        max_attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        redrive_max_receives: 0,
    }
    .redrive_count(&BackoffPolicy {
        base_secs: base,
        cap_secs: cap,
    });
    if needed > u64::from(SQS_MAX_RECEIVE_COUNT) {
        p.push(format!(
            "RetryWindowSecs {window} with RetryMaxDelaySecs {cap} needs a redrive count of \
             {needed}, above SQS's {SQS_MAX_RECEIVE_COUNT}"
        ));
    }
    if redrive < needed || redrive < u64::from(by_code) {
        p.push(format!(
            "parameter RedriveMaxReceiveCount: Default {redrive} is below \
             ceil(4 x RetryWindowSecs {window} / RetryMaxDelaySecs {cap}) + 50 = {needed} \
             (the worker's rule: {by_code}); SQS would park messages still inside their window"
        ));
    }
    if redrive <= attempts {
        p.push(format!(
            "parameter RedriveMaxReceiveCount: Default {redrive} is not above MaxAttempts \
             {attempts}"
        ));
    }
    let floor = redrive_needed(window_min, cap_max, 0);
    if redrive_min < floor {
        p.push(format!(
            "parameter RedriveMaxReceiveCount: MinValue {redrive_min} allows counts below \
             {floor}, the least the rule asks for any window and cap"
        ));
    }
    match param_u64(t, "RedriveMaxReceiveCount", "MaxValue") {
        Ok(max) if max <= u64::from(SQS_MAX_RECEIVE_COUNT) && max >= redrive => {}
        Ok(max) => p.push(format!(
            "parameter RedriveMaxReceiveCount: MaxValue {max} must be at least the Default \
             and at most SQS's {SQS_MAX_RECEIVE_COUNT}"
        )),
        Err(e) => p.push(e),
    }
    let queue = &t["Resources"]["EventQueue"]["Properties"]["RedrivePolicy"];
    if ref_of(&queue["maxReceiveCount"]) != Some("RedriveMaxReceiveCount") {
        p.push("EventQueue: maxReceiveCount is not !Ref RedriveMaxReceiveCount".into());
    }
    match worker(t) {
        Ok((fid, f, _)) => {
            let env = &f["Properties"]["Environment"]["Variables"];
            for (var, param) in [
                ("RETRY_WINDOW_SECS", "RetryWindowSecs"),
                ("RETRY_MAX_DELAY_SECS", "RetryMaxDelaySecs"),
                ("MAX_ATTEMPTS", "MaxAttempts"),
                ("REDRIVE_MAX_RECEIVE_COUNT", "RedriveMaxReceiveCount"),
            ] {
                if ref_of(&env[var]) != Some(param) {
                    p.push(format!("{fid}: {var} is not !Ref {param}"));
                }
            }
        }
        Err(e) => p.push(e),
    }
    p
}

/// An alarm the runbook relies on, as the template must declare it. Every one compares with
/// GreaterThanThreshold over one period, treats missing data as OK (so it returns to OK and
/// notifies again) and notifies the alarm topic on ALARM and on OK.
struct AlarmSpec {
    id: &'static str,
    namespace: &'static str,
    metric: &'static str,
    dimensions: Vec<(&'static str, Value)>,
    statistic: &'static str,
    period: f64,
    threshold: Value,
    /// Text the dashboard body must contain: the alarmed metric's chart row.
    chart: &'static str,
}

fn alarm_specs() -> Vec<AlarmSpec> {
    let retries = |id, target: Value, chart| AlarmSpec {
        id,
        namespace: NAMESPACE,
        metric: Metric::OutboundCalls.name(),
        dimensions: vec![("Target", target), ("Outcome", json!("retry"))],
        statistic: "Sum",
        period: 900.0,
        threshold: json!({"Ref": "OutboundRetryAlarmThreshold"}),
        chart,
    };
    vec![
        retries(
            "SparkloopRetriesAlarm",
            json!("sparkloop"),
            r#""OutboundCalls", "Target", "sparkloop", "Outcome", "retry""#,
        ),
        retries(
            "EspRetriesAlarm",
            json!({"Ref": "Esp"}),
            r#""OutboundCalls", "Target", "${Esp}", "Outcome", "retry""#,
        ),
        AlarmSpec {
            id: "ParkedAlarm",
            namespace: NAMESPACE,
            metric: Metric::Parked.name(),
            dimensions: vec![],
            statistic: "Sum",
            period: 300.0,
            threshold: json!(0),
            chart: r#""sparkbridge", "Parked""#,
        },
        AlarmSpec {
            id: "DeadLetterQueueAgeAlarm",
            namespace: "AWS/SQS",
            metric: "ApproximateAgeOfOldestMessage",
            dimensions: vec![(
                "QueueName",
                json!({"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}),
            )],
            statistic: "Maximum",
            period: 300.0,
            threshold: json!(864_000),
            chart: r#""ApproximateAgeOfOldestMessage", "QueueName", "${DeadLetterQueue.QueueName}""#,
        },
        AlarmSpec {
            id: "ReconcileRefusedAlarm",
            namespace: NAMESPACE,
            metric: Metric::ReconcileRefused.name(),
            dimensions: vec![],
            statistic: "Sum",
            period: 86_400.0,
            threshold: json!(0),
            chart: r#""sparkbridge", "ReconcileRefused""#,
        },
        AlarmSpec {
            id: "DeadLetterQueueNotEmptyAlarm",
            namespace: "AWS/SQS",
            metric: "ApproximateNumberOfMessagesVisible",
            dimensions: vec![(
                "QueueName",
                json!({"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}),
            )],
            statistic: "Maximum",
            period: 300.0,
            threshold: json!(0),
            chart: r#""ApproximateNumberOfMessagesVisible", "QueueName", "${DeadLetterQueue.QueueName}""#,
        },
        AlarmSpec {
            id: "EventQueueBacklogAlarm",
            namespace: "AWS/SQS",
            metric: "ApproximateAgeOfOldestMessage",
            dimensions: vec![(
                "QueueName",
                json!({"Fn::GetAtt": ["EventQueue", "QueueName"]}),
            )],
            statistic: "Maximum",
            period: 300.0,
            // the promise: alarmed within 15 minutes
            threshold: json!(900),
            chart: r#""ApproximateAgeOfOldestMessage", "QueueName", "${EventQueue.QueueName}""#,
        },
        lambda_errors("WorkerErrorsAlarm", "WorkerFunction", 300.0),
        lambda_errors("ScreenerErrorsAlarm", "ScreenerFunction", 3600.0),
        lambda_errors("ReconcilerErrorsAlarm", "ReconcilerFunction", 86_400.0),
        AlarmSpec {
            id: "ReconcileRepairsAlarm",
            namespace: NAMESPACE,
            metric: Metric::ReconcileRepairedTotal.name(),
            dimensions: vec![],
            statistic: "Sum",
            period: 86_400.0,
            threshold: json!({"Ref": "ReconcileRepairAlarmThreshold"}),
            chart: r#""sparkbridge", "ReconcileRepairedTotal""#,
        },
        AlarmSpec {
            id: "HttpApi5xxAlarm",
            namespace: "AWS/ApiGateway",
            metric: "5xx",
            dimensions: vec![("ApiId", json!({"Ref": "HttpApi"}))],
            statistic: "Sum",
            period: 300.0,
            threshold: json!(0),
            chart: r#""5xx", ".", ".""#,
        },
        AlarmSpec {
            id: "AuthFailuresAlarm",
            namespace: NAMESPACE,
            metric: Metric::AuthFailures.name(),
            dimensions: vec![],
            statistic: "Sum",
            period: 300.0,
            threshold: json!({"Ref": "AuthFailuresAlarmThreshold"}),
            chart: r#""sparkbridge", "AuthFailures""#,
        },
    ]
}

/// An alarm on a function's whole-invocation failures: any in one period.
fn lambda_errors(id: &'static str, function: &str, period: f64) -> AlarmSpec {
    AlarmSpec {
        id,
        namespace: "AWS/Lambda",
        metric: "Errors",
        dimensions: vec![("FunctionName", json!({ "Ref": function }))],
        statistic: "Sum",
        period,
        threshold: json!(0),
        chart: match function {
            "WorkerFunction" => r#""...", "${WorkerFunction}", { "label": "worker" }"#,
            "ScreenerFunction" => r#""Errors", "FunctionName", "${ScreenerFunction}""#,
            _ => r#""...", "${ReconcilerFunction}", { "label": "reconciler errors" }"#,
        },
    }
}

fn check_alarm_specs(t: &Value, specs: &[AlarmSpec]) -> Vec<String> {
    let mut p = Vec::new();
    let body = of_type(t, "AWS::CloudWatch::Dashboard")
        .next()
        .and_then(|(_, d)| sub_string(&d["Properties"]["DashboardBody"]))
        .unwrap_or_default();
    let topic = json!([{"Ref": "AlarmTopic"}]);
    for (id, _) in of_type(t, "AWS::CloudWatch::Alarm") {
        if !specs.iter().any(|s| s.id == id) {
            p.push(format!(
                "alarm {id} has no AlarmSpec in tests/it/template.rs: state what it watches"
            ));
        }
    }
    for spec in specs {
        let id = spec.id;
        if !is_type(t, id, "AWS::CloudWatch::Alarm") {
            p.push(format!("no alarm {id}"));
            continue;
        }
        let a = &t["Resources"][id]["Properties"];
        let expect = |key: &str, want: &Value, p: &mut Vec<String>| {
            if a.get(key) != Some(want) {
                p.push(format!(
                    "{id}: {key} is {}, expected {}",
                    a.get(key).map_or("missing".into(), compact),
                    compact(want)
                ));
            }
        };
        expect("Namespace", &json!(spec.namespace), &mut p);
        expect("MetricName", &json!(spec.metric), &mut p);
        expect("Statistic", &json!(spec.statistic), &mut p);
        expect("EvaluationPeriods", &json!(1), &mut p);
        expect("Threshold", &spec.threshold, &mut p);
        expect("ComparisonOperator", &json!("GreaterThanThreshold"), &mut p);
        expect("TreatMissingData", &json!("notBreaching"), &mut p);
        expect("AlarmActions", &topic, &mut p);
        expect("OKActions", &topic, &mut p);
        if number(a.get("Period")) != Some(spec.period) {
            p.push(format!(
                "{id}: Period is {}, expected {}",
                compact(&a["Period"]),
                spec.period
            ));
        }
        let got: BTreeMap<String, String> = list(&a["Dimensions"])
            .into_iter()
            .map(|d| (compact(&d["Name"]), compact(&d["Value"])))
            .collect();
        let want: BTreeMap<String, String> = spec
            .dimensions
            .iter()
            .map(|(k, v)| (k.to_string(), compact(v)))
            .collect();
        if got != want {
            p.push(format!(
                "{id}: Dimensions are {got:?}, expected exactly {want:?} (the set the code emits)"
            ));
        }
        if let Some(param) = ref_of(&spec.threshold) {
            if t["Parameters"][param]["Type"] != "Number" {
                p.push(format!(
                    "{id}: threshold parameter {param} is not a Number parameter"
                ));
            }
            if !body.contains(&format!("${{{param}}}")) {
                p.push(format!(
                    "{id}: threshold {param} is not on the dashboard (as an annotation)"
                ));
            }
        }
        if !body.contains(spec.chart) {
            p.push(format!(
                "{id}: its metric is not on the dashboard ({})",
                spec.chart
            ));
        }
    }
    p
}

/// The delivery promise, word for word, as docs/operations.md states it.
const PROMISE: &str = "every effect is retried for `RETRY_WINDOW_SECS`, in order per \
                       subscriber, and alarmed within 15 minutes";

/// Rows of docs/operations.md's "Parameters" table: (parameter, default cell), one per
/// parameter named in code in the first cell (`` `A` / `B` `` names two).
fn documented_parameters(doc: &str) -> Vec<(String, String)> {
    let mut in_section = false;
    let mut rows = Vec::new();
    for line in doc.lines() {
        if line.starts_with('#') {
            in_section = line.trim_start_matches('#').trim().ends_with("Parameters");
            continue;
        }
        if !in_section {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let (Some(first), Some(default)) = (cells.get(1), cells.get(2)) {
            for (i, part) in first.split('`').enumerate() {
                if i % 2 == 1 && !part.is_empty() {
                    rows.push((part.to_string(), default.to_string()));
                }
            }
        }
    }
    rows
}

/// The parameter table lists every parameter of the template and nothing else, each once,
/// with the template's default (`` `338` ``, `` `""` ``; "required" when there is none); the
/// delivery promise is stated.
fn check_parameter_docs(t: &Value, doc: &str) -> Vec<String> {
    let mut p = Vec::new();
    let rows = documented_parameters(doc);
    let params = t["Parameters"].as_object().cloned().unwrap_or_default();
    for name in params.keys() {
        match rows.iter().filter(|(n, _)| n == name).count() {
            0 => p.push(format!(
                "parameter {name} is not in docs/operations.md's table (1.4)"
            )),
            1 => {}
            n => p.push(format!(
                "parameter {name} has {n} rows in docs/operations.md's table"
            )),
        }
    }
    for (name, cell) in &rows {
        let Some(param) = params.get(name) else {
            p.push(format!(
                "docs/operations.md documents parameter {name}, not in the template"
            ));
            continue;
        };
        let Some(default) = param.get("Default").map(compact) else {
            if cell != "required" {
                p.push(format!(
                    "docs/operations.md shows {name} defaulting to {cell:?}; it has no \
                     default: write \"required\""
                ));
            }
            continue;
        };
        let Some(shown) = cell
            .strip_prefix('`')
            .and_then(|c| c.strip_suffix('`'))
            .filter(|c| !c.contains('`'))
        else {
            p.push(format!(
                "docs/operations.md shows {name}'s default as {cell:?}; write the template's \
                 default in code, `{default}`"
            ));
            continue;
        };
        let shown = if shown == "\"\"" { "" } else { shown };
        if shown != default {
            p.push(format!(
                "docs/operations.md shows {name} defaulting to {shown:?}, the template to {default:?}"
            ));
        }
    }
    let flat = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    if !flat.contains(PROMISE) {
        p.push(format!(
            "docs/operations.md does not state the promise: {PROMISE:?}"
        ));
    }
    p
}

#[track_caller]
fn ok(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "template.yaml problems:\n{problems:#?}"
    );
}

#[track_caller]
fn fails(problems: Vec<String>, needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem mentioning {needle:?}, got {problems:#?}"
    );
}

/// Every check on the template under test (`SPARKBRIDGE_TEMPLATE`, else template.yaml):
/// `scripts/template-mutants.sh` runs exactly these on each broken copy.
mod real_template {
    use super::*;

    #[test]
    fn every_role_holds_exactly_its_allow_list() {
        ok(check_role_allow_list(&real(), &role_specs()));
    }

    #[test]
    fn each_secret_reaches_only_its_functions() {
        ok(check_secret_placement(&real()));
    }

    #[test]
    fn queues_are_sized_as_the_code_assumes() {
        ok(check_queue_sizes(&real()));
    }

    #[test]
    fn functions_learn_the_queues_sqs_redrives_to() {
        ok(check_queue_wiring(&real()));
    }

    #[test]
    fn worker_reads_the_event_queue_at_its_concurrency() {
        ok(check_worker_event_source(&real()));
    }

    #[test]
    fn documented_switches_reach_the_deployed_functions() {
        ok(check_wiring(&real()));
    }

    #[test]
    fn api_urls_default_like_the_clients() {
        ok(check_api_defaults(&real()));
    }

    #[test]
    fn webhook_routes() {
        ok(check_routes(&real()));
    }

    #[test]
    fn catch_all_routes_are_throttled_below_the_rest() {
        ok(check_route_throttling(&real()));
    }

    #[test]
    fn log_groups_keep_logs_for_the_documented_parameter() {
        ok(check_log_retention_parameter(&real()));
    }

    #[test]
    fn custom_domain_is_optional_and_followed_by_the_urls() {
        ok(check_custom_domain(&real()));
    }

    #[test]
    fn scheduled_runs_never_retry_or_overlap() {
        ok(check_schedules(&real()));
    }

    #[test]
    fn functions_build_with_cargo_lambda() {
        ok(check_build(&real(), &workspace_bins()));
    }

    #[test]
    fn state_table_expires_and_indexes_as_the_code_reads_it() {
        ok(check_table(&real()));
    }

    #[test]
    fn every_metric_the_code_emits_is_shown_and_no_other() {
        ok(check_metrics(&real(), &emitted_metrics()));
    }

    #[test]
    fn dashboard_shows_every_function() {
        ok(check_dashboard_coverage(&real()));
    }

    #[test]
    fn dashboard_draws_each_alarm_at_its_threshold() {
        ok(check_dashboard_thresholds(&real()));
    }

    #[test]
    fn documented_alarms_exist() {
        ok(check_alarms(&real(), OPERATIONS));
    }

    #[test]
    fn retry_window_and_redrive_follow_the_workers_rule() {
        ok(check_retry_budget(&real()));
    }

    #[test]
    fn every_alarm_watches_what_its_spec_says() {
        ok(check_alarm_specs(&real(), &alarm_specs()));
    }

    #[test]
    fn parameter_table_and_promise_match_the_template() {
        ok(check_parameter_docs(&real(), OPERATIONS));
    }

    #[test]
    fn docs_describe_the_guardrails() {
        ok(check_guardrail_docs(OPERATIONS));
    }

    #[test]
    fn docs_name_each_secrets_functions_and_every_log_group() {
        ok(check_docs_match_functions(&real(), OPERATIONS));
    }
}

#[test]
fn wiring_check_fails() {
    let mut t = real();
    t.pointer_mut("/Resources/WorkerFunction/Properties/Environment/Variables")
        .and_then(Value::as_object_mut)
        .unwrap()
        .remove("DETECT_EMAIL_CHANGES");
    fails(
        check_wiring(&t),
        "DETECT_EMAIL_CHANGES is not !Ref DetectEmailChanges",
    );
}

#[test]
fn api_defaults_check_fails() {
    let t = set(
        real(),
        "/Parameters/SparkloopApiUrl/Default",
        json!("https://api.sparkloop.app/v2"),
    );
    fails(check_api_defaults(&t), "SparkloopApiUrl defaults to");
}

// =========================================================================================
// Tests: every check can fail
// =========================================================================================

/// Replaces the value at `pointer`, or adds it to the object that `pointer`'s parent names.
fn set(mut t: Value, pointer: &str, v: Value) -> Value {
    if let Some(slot) = t.pointer_mut(pointer) {
        *slot = v;
        return t;
    }
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    t.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no {parent} in the template"))
        .insert(unescape(key), v);
    t
}

/// A JSON pointer token as the key it names (`~1` is `/`, `~0` is `~`).
fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn remove(mut t: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    t.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove(&unescape(key)))
        .unwrap_or_else(|| panic!("no {pointer} in the template"));
    t
}

const LOOPS_POLICIES: &str = "/Resources/IngestLoopsRole/Properties/Policies";

#[test]
fn short_tags_become_long_forms() {
    let t = parse(
        r#"
A: !Ref Foo
B: !GetAtt Queue.Arn
C: !Sub "${AWS::StackName}-x"
D: !If [Cond, !Ref X, !Ref AWS::NoValue]
E: !Not [!Equals [!Ref P, ""]]
F: !GetAtt [Queue, QueueName]
"#,
    );
    assert_eq!(t["A"], json!({"Ref": "Foo"}));
    assert_eq!(t["B"], json!({"Fn::GetAtt": ["Queue", "Arn"]}));
    assert_eq!(t["C"], json!({"Fn::Sub": "${AWS::StackName}-x"}));
    assert_eq!(
        t["D"],
        json!({"Fn::If": ["Cond", {"Ref": "X"}, {"Ref": "AWS::NoValue"}]})
    );
    assert_eq!(
        t["E"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "P"}, ""]}]})
    );
    assert_eq!(t["F"], json!({"Fn::GetAtt": ["Queue", "QueueName"]}));
}

#[test]
#[should_panic(expected = "unknown CloudFormation tag !Reff")]
fn a_mistyped_tag_fails() {
    parse("A: !Reff Foo");
}

#[test]
fn queue_wiring_check_fails() {
    let t = set(
        real(),
        "/Resources/EventQueue/Properties/RedrivePolicy/deadLetterTargetArn",
        json!({"Fn::GetAtt": ["EventQueue", "Arn"]}),
    );
    fails(
        check_queue_wiring(&t),
        "deadLetterTargetArn must be !GetAtt DeadLetterQueue.Arn",
    );
    let t = remove(real(), "/Resources/EventQueue/Properties/RedrivePolicy");
    fails(check_queue_wiring(&t), "deadLetterTargetArn");
    let t = remove(
        real(),
        "/Resources/WorkerFunction/Properties/Environment/Variables/DLQ_URL",
    );
    fails(
        check_queue_wiring(&t),
        "DLQ_URL is not !Ref DeadLetterQueue",
    );
    let t = set(
        real(),
        "/Globals/Function/Environment/Variables/DLQ_URL",
        json!({"Ref": "DeadLetterQueue"}),
    );
    fails(
        check_queue_wiring(&t),
        "IngestLoopsFunction: gets DLQ_URL but does not consume the queue",
    );
    let t = remove(real(), "/Globals/Function/Environment/Variables/QUEUE_URL");
    fails(
        check_queue_wiring(&t),
        "ScreenerFunction: QUEUE_URL is not !Ref EventQueue",
    );
}

#[test]
fn worker_event_source_check_fails() {
    let events = "/Resources/WorkerFunction/Properties/Events/Queue/Properties";
    let t = set(
        real(),
        &format!("{events}/Queue"),
        json!({"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}),
    );
    fails(
        check_worker_event_source(&t),
        "must be !GetAtt EventQueue.Arn",
    );
    let t = remove(real(), &format!("{events}/ScalingConfig"));
    fails(
        check_worker_event_source(&t),
        "ScalingConfig.MaximumConcurrency must be !Ref WorkerMaxConcurrency",
    );
}

#[test]
fn routes_check_fails() {
    let esputnik = "/Resources/IngestEsputnikFunction/Properties/Events";
    let t = remove(real(), &format!("{esputnik}/Get"));
    fails(check_routes(&t), "route GET /webhooks/esputnik is missing");
    let t = set(
        real(),
        &format!("{esputnik}/Post/Properties/Path"),
        json!("/webhooks/loops"),
    );
    let p = check_routes(&t);
    fails(p.clone(), "route POST /webhooks/esputnik is missing");
    fails(p, "POST /webhooks/loops is served by");
    let t = set(
        real(),
        &format!("{esputnik}/Get/Properties/Method"),
        json!("DELETE"),
    );
    fails(
        check_routes(&t),
        "unexpected route DELETE /webhooks/esputnik",
    );
    // without the ANY route, API Gateway answers other methods 404, not the function's 405
    let t = remove(real(), &format!("{esputnik}/OtherMethods"));
    fails(check_routes(&t), "route ANY /webhooks/esputnik is missing");
    let t = remove(real(), &format!("{esputnik}/Get/Properties/ApiId"));
    fails(check_routes(&t), "ApiId must be !Ref HttpApi");
}

#[test]
fn build_check_fails() {
    let bins = workspace_bins();
    let f = "/Resources/WorkerFunction";
    let t = set(
        real(),
        &format!("{f}/Metadata/BuildMethod"),
        json!("makefile"),
    );
    fails(
        check_build(&t, &bins),
        "BuildMethod must be rust-cargolambda",
    );
    let t = remove(real(), &format!("{f}/Metadata/BuildProperties/Binary"));
    fails(check_build(&t, &bins), "Binary missing");
    let t = set(
        real(),
        &format!("{f}/Metadata/BuildProperties/Binary"),
        json!("wrker"),
    );
    fails(check_build(&t, &bins), "\"wrker\" is not a package");
    let t = set(
        real(),
        &format!("{f}/Metadata/BuildProperties/Binary"),
        json!("ingest-loops"),
    );
    fails(check_build(&t, &bins), "used by two functions");
    let t = set(
        real(),
        &format!("{f}/Properties/CodeUri"),
        json!("functions/worker"),
    );
    fails(check_build(&t, &bins), "CodeUri must be");
    let t = set(real(), "/Globals/Function/Runtime", json!("provided.al2"));
    fails(check_build(&t, &bins), "Runtime must be provided.al2023");
    let t = set(real(), "/Globals/Function/Architectures", json!(["arm64"]));
    fails(
        check_build(&t, &bins),
        "Architectures must be [!Ref Architecture]",
    );
    assert!(
        bins.contains("worker") && bins.contains("ingest-loops"),
        "{bins:?}"
    );
}

#[test]
fn table_check_fails() {
    let t = set(
        real(),
        "/Resources/StateTable/Properties/TimeToLiveSpecification/Enabled",
        json!(false),
    );
    fails(check_table(&t), "TTL");
    let t = set(
        real(),
        "/Resources/StateTable/Properties/TimeToLiveSpecification/AttributeName",
        json!("ttl"),
    );
    fails(check_table(&t), "TTL on expires_at");
    let t = set(
        real(),
        "/Resources/StateTable/Properties/GlobalSecondaryIndexes/0/IndexName",
        json!("by_time"),
    );
    fails(check_table(&t), "the code queries only \"by_deadline\"");
}

#[test]
fn metrics_check_fails() {
    let mut with_new = emitted_metrics();
    with_new.insert("LeaseLost".into());
    fails(
        check_metrics(&real(), &with_new),
        "metric LeaseLost is emitted",
    );
    // Parked is alarmed and charted twice (a SEARCH row and its own widget): rename all three.
    let t = remove(real(), "/Resources/ParkedAlarm");
    let body = sub_string(&t["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
        .expect("dashboard is a !Sub")
        .replace("MetricName=\\\"Parked\\\"", "MetricName=\\\"Parkd\\\"")
        .replace("\"sparkbridge\", \"Parked\"", "\"sparkbridge\", \"Parkd\"");
    let t = set(
        t,
        "/Resources/Dashboard/Properties/DashboardBody",
        json!({"Fn::Sub": body}),
    );
    let p = check_metrics(&t, &emitted_metrics());
    fails(p.clone(), "metric Parked is emitted");
    fails(
        p,
        "metric Parkd is on the dashboard or alarmed, but the code emits no such metric",
    );
    // AuthFailures is both alarmed and on the dashboard: remove both.
    let t = remove(real(), "/Resources/AuthFailuresAlarm");
    let t = edit_dashboard(
        t,
        "[ \"sparkbridge\", \"AuthFailures\", { \"label\": \"AuthFailures (all providers)\", \"id\": \"auth\" } ]",
        "[ \"AWS/ApiGateway\", \"4xx\", \"ApiId\", \"${HttpApi}\" ]",
    );
    fails(
        check_metrics(&t, &emitted_metrics()),
        "metric AuthFailures is emitted",
    );
    // An alarm on a metric the code does not emit.
    let t = set(
        real(),
        "/Resources/ParkedAlarm/Properties/MetricName",
        json!("ParkedMessages"),
    );
    fails(
        check_metrics(&t, &emitted_metrics()),
        "metric ParkedMessages is on the dashboard or alarmed",
    );
    // Invalid dashboard JSON is reported, not skipped.
    let t = set(
        real(),
        "/Resources/Dashboard/Properties/DashboardBody",
        json!({"Fn::Sub": "{\"widgets\": ["}),
    );
    fails(
        check_metrics(&t, &emitted_metrics()),
        "DashboardBody is not JSON",
    );
}

#[test]
fn alarms_check_fails() {
    let t = remove(real(), "/Resources/WorkerErrorsAlarm");
    let p = check_alarms(&t, OPERATIONS);
    fails(
        p,
        "alarm WorkerErrorsAlarm is documented but not in the template",
    );
    let doc = OPERATIONS.replace("| `AuthFailuresAlarm` |", "| AuthFailures |");
    fails(
        check_alarms(&real(), &doc),
        "alarm AuthFailuresAlarm is not documented",
    );
    let t = set(
        real(),
        "/Resources/HttpApi5xxAlarm/Properties/AlarmActions",
        json!([]),
    );
    fails(
        check_alarms(&t, OPERATIONS),
        "HttpApi5xxAlarm: AlarmActions",
    );
    fails(check_alarms(&real(), "# nothing here"), "lists no alarms");
    assert_eq!(
        documented_alarms(
            "### 5.2 Alarms\n\n| Alarm | x |\n|---|---|\n| `AAlarm` | y |\n### 5.3 Other\n| `B` |"
        ),
        vec!["AAlarm".to_string()]
    );
}

#[test]
fn retry_budget_check_fails() {
    let params = "/Parameters";
    // The old count-based defaults: SQS would park after 10 receives, hours into the window.
    let t = set(
        real(),
        &format!("{params}/RedriveMaxReceiveCount/Default"),
        json!(10),
    );
    fails(
        check_retry_budget(&t),
        "RedriveMaxReceiveCount: Default 10 is below",
    );
    let t = set(real(), &format!("{params}/MaxAttempts/Default"), json!(8));
    fails(check_retry_budget(&t), "MaxAttempts: Default 8");
    let t = set(real(), &format!("{params}/MaxAttempts/MinValue"), json!(1));
    fails(check_retry_budget(&t), "MinValue 1 must be 0");
    // A count limit above the redrive count: SQS redrives first, without the error.
    let t = set(real(), &format!("{params}/MaxAttempts/Default"), json!(400));
    let p = check_retry_budget(&t);
    fails(p.clone(), "is below");
    fails(p, "is not above MaxAttempts 400");
    // A longer window at the same cap needs more receives than the default allows...
    let t = set(
        real(),
        &format!("{params}/RetryWindowSecs/Default"),
        json!(345_600),
    );
    fails(check_retry_budget(&t), "= 434");
    // ...and past SQS's 1000 no redrive count is enough.
    let t = set(
        real(),
        &format!("{params}/RetryWindowSecs/Default"),
        json!(864_000),
    );
    fails(check_retry_budget(&t), "above SQS's 1000");
    let t = set(
        real(),
        &format!("{params}/RetryWindowSecs/MaxValue"),
        json!(1_209_600),
    );
    let p = check_retry_budget(&t);
    fails(p.clone(), "the range the worker accepts");
    fails(p, "is not below EventQueue's MessageRetentionPeriod");
    let t = set(
        real(),
        &format!("{params}/RedriveMaxReceiveCount/MinValue"),
        json!(2),
    );
    fails(check_retry_budget(&t), "MinValue 2 allows counts below 51");
    let t = set(
        real(),
        &format!("{params}/RedriveMaxReceiveCount/MaxValue"),
        json!(5000),
    );
    fails(check_retry_budget(&t), "MaxValue 5000");
    let t = set(
        real(),
        "/Resources/EventQueue/Properties/RedrivePolicy/maxReceiveCount",
        json!(338),
    );
    fails(
        check_retry_budget(&t),
        "maxReceiveCount is not !Ref RedriveMaxReceiveCount",
    );
    let t = remove(
        real(),
        "/Resources/WorkerFunction/Properties/Environment/Variables/REDRIVE_MAX_RECEIVE_COUNT",
    );
    fails(
        check_retry_budget(&t),
        "REDRIVE_MAX_RECEIVE_COUNT is not !Ref RedriveMaxReceiveCount",
    );
    let t = remove(real(), &format!("{params}/RetryWindowSecs"));
    fails(check_retry_budget(&t), "parameter RetryWindowSecs: no");
    // The rule itself, at the defaults and at the extremes.
    assert_eq!(redrive_needed(259_200, 3_600, 0), 338);
    assert_eq!(redrive_needed(1, 43_200, 0), 51);
    assert_eq!(redrive_needed(1, 43_200, 100), 102);
}

#[test]
fn alarm_specs_check_fails() {
    let specs = alarm_specs();
    let t = remove(real(), "/Resources/DeadLetterQueueAgeAlarm");
    fails(
        check_alarm_specs(&t, &specs),
        "no alarm DeadLetterQueueAgeAlarm",
    );
    let t = remove(real(), "/Resources/ParkedAlarm/Properties/TreatMissingData");
    fails(
        check_alarm_specs(&t, &specs),
        "ParkedAlarm: TreatMissingData is missing",
    );
    // The ESP alarm on a fixed ESP instead of the configured one.
    let t = set(
        real(),
        "/Resources/EspRetriesAlarm/Properties/Dimensions/0/Value",
        json!("loops"),
    );
    fails(check_alarm_specs(&t, &specs), "EspRetriesAlarm: Dimensions");
    // A dimension the code does not emit: the alarm would watch a metric that never exists.
    let t = set(
        real(),
        "/Resources/ParkedAlarm/Properties/Dimensions",
        json!([{"Name": "Provider", "Value": "loops"}]),
    );
    fails(check_alarm_specs(&t, &specs), "ParkedAlarm: Dimensions");
    let t = set(
        real(),
        "/Resources/SparkloopRetriesAlarm/Properties/Threshold",
        json!(20),
    );
    fails(
        check_alarm_specs(&t, &specs),
        "SparkloopRetriesAlarm: Threshold",
    );
    let t = set(
        real(),
        "/Resources/SparkloopRetriesAlarm/Properties/Period",
        json!(3600),
    );
    fails(
        check_alarm_specs(&t, &specs),
        "SparkloopRetriesAlarm: Period",
    );
    let t = set(
        real(),
        "/Resources/DeadLetterQueueAgeAlarm/Properties/Dimensions/0/Value",
        json!({"Fn::GetAtt": ["EventQueue", "QueueName"]}),
    );
    fails(
        check_alarm_specs(&t, &specs),
        "DeadLetterQueueAgeAlarm: Dimensions",
    );
    let t = remove(
        real(),
        "/Resources/ReconcileRefusedAlarm/Properties/OKActions",
    );
    fails(
        check_alarm_specs(&t, &specs),
        "ReconcileRefusedAlarm: OKActions",
    );
    // A dashboard whose retries line is a literal, not the alarm's parameter.
    let t = real();
    let body = sub_string(&t["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
        .expect("dashboard is a !Sub")
        .replace("${OutboundRetryAlarmThreshold}", "20");
    let t = set(
        t,
        "/Resources/Dashboard/Properties/DashboardBody",
        json!({"Fn::Sub": body}),
    );
    fails(
        check_alarm_specs(&t, &specs),
        "threshold OutboundRetryAlarmThreshold is not on the dashboard",
    );
    // The dashboard still parses: the unquoted Number parameter became its default.
    let body = dashboard(&real()).expect("dashboard parses");
    assert!(body.to_string().contains("\"value\":20"), "{body}");
}

#[test]
fn parameter_docs_check_fails() {
    let doc = OPERATIONS.replace(
        "| `RedriveMaxReceiveCount` | `338` |",
        "| `RedriveMaxReceiveCount` | `10` |",
    );
    fails(
        check_parameter_docs(&real(), &doc),
        "shows RedriveMaxReceiveCount defaulting to \"10\", the template to \"338\"",
    );
    let t = set(real(), "/Parameters/RetryWindowSecs/Default", json!(86_400));
    fails(
        check_parameter_docs(&t, OPERATIONS),
        "shows RetryWindowSecs defaulting to \"259200\"",
    );
    let doc = OPERATIONS.replace("| `RetryWindowSecs` |", "| RetryWindowSecs |");
    fails(
        check_parameter_docs(&real(), &doc),
        "parameter RetryWindowSecs is not in",
    );
    let doc = OPERATIONS.replace("in order per subscriber", "in order");
    fails(
        check_parameter_docs(&real(), &doc),
        "does not state the promise",
    );
    assert_eq!(
        documented_parameters(
            "### 1.4 Parameters\n\n| Parameter | Default |\n|---|---|\n| `A` (NoEcho) | `\"\"` | x |\n### 2. Next\n| `B` | `1` |"
        ),
        vec![("A".to_string(), "`\"\"`".to_string())]
    );
}

#[test]
fn wiring_check_fails_for_the_retry_budget() {
    let t = remove(
        real(),
        "/Resources/WorkerFunction/Properties/Environment/Variables/RETRY_WINDOW_SECS",
    );
    fails(
        check_wiring(&t),
        "RETRY_WINDOW_SECS is not !Ref RetryWindowSecs",
    );
    let t = remove(
        real(),
        "/Resources/ReconcilerFunction/Properties/Environment/Variables/RECONCILE_MAX_UNSUBSCRIBE_SHARE",
    );
    fails(
        check_wiring(&t),
        "RECONCILE_MAX_UNSUBSCRIBE_SHARE is not !Ref ReconcileMaxUnsubscribeShare",
    );
}

/// Appends `v` to the array at `pointer`.
fn push(mut t: Value, pointer: &str, v: Value) -> Value {
    t.pointer_mut(pointer)
        .and_then(Value::as_array_mut)
        .unwrap_or_else(|| panic!("no array at {pointer} in the template"))
        .push(v);
    t
}

/// The dashboard body with `from` replaced by `to` (exactly one occurrence).
fn edit_dashboard(t: Value, from: &str, to: &str) -> Value {
    let body = sub_string(&t["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
        .expect("dashboard is a !Sub")
        .to_string();
    assert_eq!(body.matches(from).count(), 1, "{from:?} in the dashboard");
    set(
        t,
        "/Resources/Dashboard/Properties/DashboardBody",
        json!({ "Fn::Sub": body.replace(from, to) }),
    )
}

const WORKER_STATE: &str = "/Resources/WorkerRole/Properties/Policies/2/PolicyDocument/Statement/0";
const SCREENER_QUERY: &str =
    "/Resources/ScreenerRole/Properties/Policies/2/PolicyDocument/Statement/1";

#[test]
fn role_allow_list_check_fails() {
    let specs = role_specs();
    // The worker queries again, and on every index.
    let t = push(
        real(),
        &format!("{WORKER_STATE}/Action"),
        json!("dynamodb:Query"),
    );
    fails(
        check_role_allow_list(&t, &specs),
        "WorkerRole: grant dynamodb:Query on {\"Fn::GetAtt\":[\"StateTable\",\"Arn\"]} is not in the allow-list",
    );
    // Every table in every account.
    let t = set(
        real(),
        &format!("{WORKER_STATE}/Resource"),
        json!({ "Fn::Sub": "arn:aws:dynamodb:*:*:table/*" }),
    );
    let p = check_role_allow_list(&t, &specs);
    fails(p.clone(), "table/*\"} is not in the allow-list");
    fails(p, "WorkerRole: missing grant dynamodb:GetItem");
    // A !Sub is not enough: it must be the expected one.
    let t = set(
        real(),
        &format!("{SCREENER_QUERY}/Resource"),
        json!({ "Fn::Sub": "${StateTable.Arn}/index/*" }),
    );
    fails(
        check_role_allow_list(&t, &specs),
        "ScreenerRole: grant dynamodb:Query on {\"Fn::Sub\":\"${StateTable.Arn}/index/*\"}",
    );
    // The screener reads the secrets.
    let secrets = real()["Resources"]["ReconcilerRole"]["Properties"]["Policies"][4].clone();
    let t = push(
        real(),
        "/Resources/ScreenerRole/Properties/Policies",
        secrets,
    );
    fails(
        check_role_allow_list(&t, &specs),
        "ScreenerRole: grant secretsmanager:GetSecretValue",
    );
    // The secrets grant on the wrong side of its condition.
    let loops_secrets = format!("{LOOPS_POLICIES}/3/Fn::If");
    let policy = real()
        .pointer(&format!("{loops_secrets}/1"))
        .cloned()
        .unwrap();
    let t = set(
        real(),
        &format!("{loops_secrets}/1"),
        json!({"Ref": "AWS::NoValue"}),
    );
    let t = set(t, &format!("{loops_secrets}/2"), policy);
    fails(
        check_role_allow_list(&t, &specs),
        "(under !HasSecretsArn) is not in the allow-list",
    );
    // A condition that is always true, and a statement narrowed by a Condition.
    let t = set(
        real(),
        "/Conditions/HasSecretsArn",
        json!({ "Fn::Equals": ["a", "a"] }),
    );
    fails(
        check_role_allow_list(&t, &specs),
        "condition HasSecretsArn is",
    );
    let t = set(
        real(),
        &format!("{WORKER_STATE}/Condition"),
        json!({ "StringEquals": { "aws:RequestedRegion": "eu-west-1" } }),
    );
    fails(
        check_role_allow_list(&t, &specs),
        "WorkerRole: a statement has Condition",
    );
    // A role nobody reviewed.
    let role = real()["Resources"]["ScreenerRole"].clone();
    let t = set(real(), "/Resources/ExtraRole", role);
    fails(
        check_role_allow_list(&t, &specs),
        "role ExtraRole is not in the allow-list",
    );
}

#[test]
fn queue_sizes_check_fails() {
    let t = set(
        real(),
        "/Resources/DeadLetterQueue/Properties/MaximumMessageSize",
        json!(1_048_576),
    );
    fails(
        check_queue_sizes(&t),
        "DeadLetterQueue: MaximumMessageSize is Some(1048576.0)",
    );
    let t = set(
        real(),
        "/Globals/Function/Environment/Variables/MAX_MESSAGE_BYTES",
        json!("1048576"),
    );
    fails(
        check_queue_sizes(&t),
        "IngestLoopsFunction: MAX_MESSAGE_BYTES is Some(\"1048576\")",
    );
}

#[test]
fn secret_placement_check_fails() {
    let env = |f: &str, var: &str| format!("/Resources/{f}/Properties/Environment/Variables/{var}");
    let t = set(
        real(),
        &env("IngestSparkloopFunction", "SPARKLOOP_API_KEY"),
        json!({ "Ref": "SparkloopApiKey" }),
    );
    fails(
        check_secret_placement(&t),
        "IngestSparkloopFunction: has SPARKLOOP_API_KEY, a secret that belongs only to",
    );
    let t = set(
        real(),
        &env("ScreenerFunction", "LOOPS_API_KEY"),
        json!({ "Ref": "LoopsApiKey" }),
    );
    fails(
        check_secret_placement(&t),
        "ScreenerFunction: has LOOPS_API_KEY",
    );
    let t = set(
        real(),
        &env("WorkerFunction", "LOOPS_SIGNING_SECRET"),
        json!({ "Ref": "LoopsSigningSecret" }),
    );
    fails(
        check_secret_placement(&t),
        "WorkerFunction: has LOOPS_SIGNING_SECRET",
    );
    let t = remove(real(), &env("ReconcilerFunction", "ESPUTNIK_API_KEY"));
    fails(
        check_secret_placement(&t),
        "ReconcilerFunction: ESPUTNIK_API_KEY is not !Ref EsputnikApiKey",
    );
    // A secret under another name, or in a description.
    let t = set(
        real(),
        &env("ScreenerFunction", "KEY"),
        json!({ "Ref": "SparkloopApiKey" }),
    );
    fails(
        check_secret_placement(&t),
        "/Resources/ScreenerFunction/Properties/Environment/Variables/KEY: names secret parameter SparkloopApiKey",
    );
    let t = set(
        real(),
        "/Resources/AlarmTopic/Properties/DisplayName",
        json!({ "Fn::Sub": "alarms ${EsputnikWebhookToken}" }),
    );
    fails(
        check_secret_placement(&t),
        "/Resources/AlarmTopic/Properties/DisplayName: names secret parameter",
    );
    let t = set(
        real(),
        &env("ScreenerFunction", "SECRETS_ARN"),
        json!({ "Fn::If": ["HasSecretsArn", { "Ref": "SecretsArn" }, { "Ref": "AWS::NoValue" }] }),
    );
    fails(
        check_secret_placement(&t),
        "ScreenerFunction: gets SECRETS_ARN but reads no secret",
    );
    let t = set(
        real(),
        &env("WorkerFunction", "SECRETS_TTL_SECS"),
        json!("300"),
    );
    fails(
        check_secret_placement(&t),
        "WorkerFunction: SECRETS_TTL_SECS is 300, expected",
    );
    let t = set(
        real(),
        "/Parameters/SecretsArn/AllowedPattern",
        json!("^$|^arn:aws:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/*?-]+$"),
    );
    fails(
        check_secret_placement(&t),
        "parameter SecretsArn: AllowedPattern admits",
    );
    let t = set(real(), "/Parameters/SecretsTtlSecs/Default", json!(0));
    fails(check_secret_placement(&t), "parameter SecretsTtlSecs");
}

#[test]
fn schedules_check_fails() {
    let screener = "/Resources/ScreenerFunction/Properties";
    let reconciler = "/Resources/ReconcilerFunction/Properties";
    let t = set(
        real(),
        &format!("{screener}/Events/Hourly/Properties/RetryPolicy/MaximumRetryAttempts"),
        json!(2),
    );
    fails(
        check_schedules(&t),
        "ScreenerFunction.Hourly: RetryPolicy.MaximumRetryAttempts must be 0",
    );
    let t = remove(real(), &format!("{reconciler}/EventInvokeConfig"));
    fails(
        check_schedules(&t),
        "ReconcilerFunction: EventInvokeConfig.MaximumRetryAttempts must be 0",
    );
    let t = set(real(), &format!("{screener}/Timeout"), json!(900));
    let t = set(
        t,
        &format!("{screener}/Events/Hourly/Properties/Schedule"),
        json!("rate(5 minutes)"),
    );
    fails(
        check_schedules(&t),
        "ScreenerFunction.Hourly: schedule \"rate(5 minutes)\"",
    );
    let pattern = "/Parameters/ReconcileSchedule/AllowedPattern";
    let widened = real()["Parameters"]["ReconcileSchedule"]["AllowedPattern"]
        .as_str()
        .unwrap()
        .replace("(1 hour|", "([1-9][0-9]? minutes|1 hour|");
    let t = set(real(), pattern, json!(widened));
    fails(
        check_schedules(&t),
        "parameter ReconcileSchedule: AllowedPattern admits",
    );
    let t = set(real(), pattern, json!("cron\\([0-9/*]+ .*\\)"));
    fails(check_schedules(&t), "which is not hourly or coarser");
    let t = remove(real(), pattern);
    fails(check_schedules(&t), "ReconcileSchedule: no AllowedPattern");
    let t = set(
        real(),
        "/Parameters/ReconcileSchedule/Description",
        json!("When the reconciler runs."),
    );
    fails(check_schedules(&t), "must say why runs may not overlap");
    let t = set(
        real(),
        &format!("{reconciler}/Events/Daily/Properties/Schedule"),
        json!("rate(1 day)"),
    );
    fails(check_schedules(&t), "is not !Ref ReconcileSchedule");
    // The interval reader.
    for (expr, secs) in [
        ("rate(1 hour)", Some(3600)),
        ("rate(2 hours)", Some(7200)),
        ("rate(1 day)", Some(86_400)),
        ("rate(15 minutes)", Some(900)),
        ("rate(1 hours)", None),
        ("rate(2 hour)", None),
        ("rate(0 days)", None),
        ("rate(01 days)", None),
        ("cron(0 3 * * ? *)", Some(3600)),
        ("cron(15 */2 ? * MON-FRI *)", Some(3600)),
        ("cron(0/5 * * * ? *)", Some(60)),
        ("cron(0,30 * * * ? *)", Some(60)),
        ("cron(0 3 * *)", None),
        ("at(2030-01-01T00:00:00)", None),
    ] {
        assert_eq!(min_interval_secs(expr), secs, "{expr}");
    }
}

#[test]
fn route_throttling_check_fails() {
    let api = "/Resources/HttpApi/Properties";
    let t = remove(
        real(),
        &format!("{api}/RouteSettings/ANY ~1webhooks~1esputnik"),
    );
    fails(
        check_route_throttling(&t),
        "no throttling of its own for \"ANY /webhooks/esputnik\"",
    );
    let t = set(
        real(),
        &format!("{api}/RouteSettings/ANY ~1webhooks~1loops/ThrottlingRateLimit"),
        json!(100),
    );
    fails(check_route_throttling(&t), "not below the default route's");
    let t = set(
        real(),
        &format!("{api}/RouteSettings/ANY ~1webhooks~1sparkloop"),
        json!({}),
    );
    fails(check_route_throttling(&t), "\"ANY /webhooks/sparkloop\"");
    let t = set(
        real(),
        &format!("{api}/RouteSettings/GET ~1healthz"),
        json!({ "ThrottlingBurstLimit": 1, "ThrottlingRateLimit": 1 }),
    );
    fails(
        check_route_throttling(&t),
        "names \"GET /healthz\", not a route",
    );
}

#[test]
fn log_retention_parameter_check_fails() {
    let t = set(
        real(),
        "/Resources/WorkerLogGroup/Properties/RetentionInDays",
        json!(14),
    );
    fails(
        check_log_retention_parameter(&t),
        "WorkerLogGroup: RetentionInDays is not !Ref LogRetentionDays",
    );
}

#[test]
fn custom_domain_check_fails() {
    let t = remove(real(), "/Resources/ApiDomainRecord/Condition");
    fails(
        check_custom_domain(&t),
        "ApiDomainRecord: must be the A alias",
    );
    let t = set(
        real(),
        "/Resources/ApiDomainRecord/Condition",
        json!("HasDomainName"),
    );
    fails(check_custom_domain(&t), "under Condition HasHostedZone");
    let t = set(
        real(),
        "/Resources/ApiDomainName/Properties/DomainNameConfigurations/0/EndpointType",
        json!("EDGE"),
    );
    fails(check_custom_domain(&t), "one REGIONAL endpoint");
    let t = set(
        real(),
        "/Resources/ApiDomainMapping/Properties/Stage",
        json!("prod"),
    );
    fails(check_custom_domain(&t), "ApiDomainMapping: must map");
    let t = set(
        real(),
        "/Outputs/LoopsWebhookUrl/Value",
        json!({ "Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/webhooks/loops" }),
    );
    fails(check_custom_domain(&t), "output LoopsWebhookUrl");
    let t = set(
        real(),
        "/Outputs/SparkloopWebhookUrl/Value/Fn::If/1",
        json!({ "Fn::Sub": "https://${DomainName}/webhooks/loops" }),
    );
    fails(check_custom_domain(&t), "output SparkloopWebhookUrl");
    let t = set(
        real(),
        "/Conditions/HasDomainName",
        json!({ "Fn::Equals": [{ "Ref": "DomainName" }, ""] }),
    );
    fails(check_custom_domain(&t), "condition HasDomainName is");
    let t = remove(real(), "/Rules/CertificateWithDomainName");
    fails(check_custom_domain(&t), "nothing requires CertificateArn");
    let t = remove(real(), "/Parameters/HostedZoneId/Default");
    fails(check_custom_domain(&t), "parameter HostedZoneId");
}

#[test]
fn dashboard_coverage_check_fails() {
    let t = edit_dashboard(
        real(),
        "[ \"...\", \"${ReconcilerFunction}\", { \"label\": \"reconciler\" } ],",
        "",
    );
    fails(
        check_dashboard_coverage(&t),
        "dashboard: widget \"Lambda errors\" has no AWS/Lambda Errors row for ReconcilerFunction",
    );
    let t = edit_dashboard(
        real(),
        ",\n          [ \"...\", \"${ScreenerFunction}\", { \"label\": \"screener\" } ],\n          [ \"...\", \"${ReconcilerFunction}\", { \"label\": \"reconciler\" } ]\n",
        "\n",
    );
    let p = check_dashboard_coverage(&t);
    fails(p.clone(), "no AWS/Lambda Duration row for ScreenerFunction");
    fails(p, "no AWS/Lambda Duration row for ReconcilerFunction");
    let t = edit_dashboard(
        real(),
        "\"title\": \"Lambda errors\"",
        "\"title\": \"Errors\"",
    );
    fails(
        check_dashboard_coverage(&t),
        "expected one widget titled \"Lambda errors\", found 0",
    );
}

#[test]
fn dashboard_thresholds_check_fails() {
    let t = edit_dashboard(real(), "${AuthFailuresAlarmThreshold}", "20");
    fails(
        check_dashboard_thresholds(&t),
        "the \"AuthFailuresAlarm\" line is at 20.0, alarm AuthFailuresAlarm fires above ${AuthFailuresAlarmThreshold}",
    );
    let t = edit_dashboard(
        real(),
        "\"label\": \"EventQueueBacklogAlarm\", \"value\": 900",
        "\"label\": \"EventQueueBacklogAlarm\", \"value\": 1800",
    );
    fails(
        check_dashboard_thresholds(&t),
        "alarm EventQueueBacklogAlarm fires above 900",
    );
    let t = edit_dashboard(
        real(),
        "\"label\": \"WorkerErrorsAlarm (any)\"",
        "\"label\": \"errors\"",
    );
    fails(
        check_dashboard_thresholds(&t),
        "no threshold line (annotation) names alarm WorkerErrorsAlarm",
    );
    // The retries line follows its parameter (the real template's dashboard parses).
    let body = dashboard_with(&real(), true).expect("dashboard parses");
    assert!(
        body.to_string()
            .contains("\"value\":\"${OutboundRetryAlarmThreshold}\""),
        "{body}"
    );
}

#[test]
fn guardrail_docs_check_fails() {
    let doc = OPERATIONS.replace("--no-enabled", "--disable");
    fails(
        check_guardrail_docs(&doc),
        "does not describe the kill switch",
    );
    let doc = OPERATIONS.replace("`DeletionProtectionEnabled: true`", "deletion protection");
    fails(
        check_guardrail_docs(&doc),
        "the state table's deletion protection",
    );
}

#[test]
fn docs_functions_check_fails() {
    let doc = OPERATIONS.replace(
        "  - worker and reconciler: `SPARKLOOP_API_KEY`",
        "  - worker: `SPARKLOOP_API_KEY`",
    );
    fails(
        check_docs_match_functions(&real(), &doc),
        "gives SPARKLOOP_API_KEY to {\"worker\"}, the template to {\"reconciler\", \"worker\"}",
    );
    let doc = OPERATIONS.replace(" and `-reconciler`", "");
    fails(
        check_docs_match_functions(&real(), &doc),
        "does not list the reconciler log group",
    );
    assert_eq!(
        doc_section("# A\nx\n## B\ny\n### C\nz\n## D\nw", "## B"),
        "\ny\n### C\nz"
    );
}

#[test]
fn an_unspecified_alarm_or_undocumented_parameter_fails() {
    // Every alarm has a spec, and a changed threshold is seen.
    let alarm = real()["Resources"]["ParkedAlarm"].clone();
    let t = set(real(), "/Resources/ParkedAgainAlarm", alarm);
    fails(
        check_alarm_specs(&t, &alarm_specs()),
        "alarm ParkedAgainAlarm has no AlarmSpec",
    );
    let t = set(
        real(),
        "/Resources/WorkerErrorsAlarm/Properties/Threshold",
        json!(5),
    );
    fails(
        check_alarm_specs(&t, &alarm_specs()),
        "WorkerErrorsAlarm: Threshold is 5",
    );
    // Every parameter in the table, with its default.
    let t = set(
        real(),
        "/Parameters/Extra",
        json!({ "Type": "String", "Default": "" }),
    );
    fails(
        check_parameter_docs(&t, OPERATIONS),
        "parameter Extra is not in docs/operations.md's table",
    );
    let doc = OPERATIONS.replace(
        "| `SecretsTtlSecs` | `300` |",
        "| `SecretsTtlSecs` | 5 minutes |",
    );
    fails(
        check_parameter_docs(&real(), &doc),
        "shows SecretsTtlSecs's default as \"5 minutes\"",
    );
    let t = remove(real(), "/Parameters/SparkloopApiKey/Default");
    fails(
        check_parameter_docs(&t, OPERATIONS),
        "shows SparkloopApiKey defaulting to \"`\\\"\\\"`\"; it has no default",
    );
}
