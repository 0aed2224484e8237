//! The API contract as code: every response the API tests get is checked against
//! docs/openapi.yaml — the operation and status must be documented, a JSON body must match
//! the documented schema (JSON Schema 2020-12, as OpenAPI 3.1 uses), other bodies the
//! documented media type. The schemas close their objects (`additionalProperties: false`)
//! where the shape is ivrflow's own, so a field the handlers add without documenting it
//! fails the tests as surely as a documented field they stop sending.
//!
//! [`Api`] wraps the tests' API client and checks every response it gets.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

pub struct Contract {
    doc: Value,
    /// (METHOD, path template) of every operation a check matched.
    seen: Mutex<BTreeSet<(String, String)>>,
}

pub fn contract() -> &'static Contract {
    static C: OnceLock<Contract> = OnceLock::new();
    C.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml");
        let text = std::fs::read_to_string(&path).expect("docs/openapi.yaml");
        let doc: Value = serde_saphyr::from_str(&text).expect("docs/openapi.yaml is YAML");
        Contract {
            doc,
            seen: Mutex::new(BTreeSet::new()),
        }
    })
}

/// `~` and `/` escaped for a JSON pointer, `{` and `}` for the URI fragment it goes in.
fn pointer_token(s: &str) -> String {
    s.replace('~', "~0")
        .replace('/', "~1")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

impl Contract {
    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// Every (METHOD, path template) the document describes.
    pub fn operations(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for m in ["get", "put", "post", "delete", "patch", "head"] {
                if item.get(m).is_some() {
                    out.insert((m.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    pub fn seen(&self) -> BTreeSet<(String, String)> {
        self.seen.lock().unwrap().clone()
    }

    /// The path template that `path` (no query) matches.
    fn template(&self, path: &str) -> Option<String> {
        let segs: Vec<&str> = path.split('/').collect();
        let mut best: Option<(usize, String)> = None;
        for tpl in self.doc["paths"].as_object()?.keys() {
            let t: Vec<&str> = tpl.split('/').collect();
            if t.len() != segs.len() {
                continue;
            }
            let mut statics = 0;
            let ok = t.iter().zip(&segs).all(|(a, b)| {
                if a.starts_with('{') && a.ends_with('}') {
                    !b.is_empty()
                } else {
                    statics += 1;
                    a == b
                }
            });
            if ok && best.as_ref().is_none_or(|(n, _)| statics > *n) {
                best = Some((statics, tpl.clone()));
            }
        }
        best.map(|b| b.1)
    }

    /// Follow `$ref`s to components.
    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            v = self
                .doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("docs/openapi.yaml: unresolved $ref {r}"));
        }
        v
    }

    /// Check one response. `path` may carry a query string.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &str,
    ) -> Result<(), String> {
        let path = path.split('?').next().unwrap_or(path);
        let what = format!("{method} {path} → {status}");
        let tpl = self
            .template(path)
            .ok_or_else(|| format!("{what}: the path is not in docs/openapi.yaml"))?;
        let m = method.to_lowercase();
        let op = self.doc["paths"][&tpl]
            .get(&m)
            .ok_or_else(|| format!("{what}: {method} {tpl} is not in docs/openapi.yaml"))?;
        self.seen
            .lock()
            .unwrap()
            .insert((method.to_uppercase(), tpl.clone()));
        let code = status.to_string();
        let class = format!("{}XX", status / 100);
        let responses = &op["responses"];
        let (key, resp) = [code.as_str(), class.as_str(), "default"]
            .into_iter()
            .find_map(|k| responses.get(k).map(|v| (k.to_owned(), v)))
            .ok_or_else(|| {
                format!("{what}: status {status} is not documented for {method} {tpl}")
            })?;
        let resp = self.resolve(resp);
        let Some(content) = resp.get("content").and_then(Value::as_object) else {
            return if body.trim().is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{what}: the response has a body but docs/openapi.yaml documents none: {body}"
                ))
            };
        };
        let ctype = content_type
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let (media, spec) = content.iter().find(|(k, _)| **k == ctype).ok_or_else(|| {
            format!(
                "{what}: content type {ctype:?} is not documented (documented: {:?})",
                content.keys().collect::<Vec<_>>()
            )
        })?;
        if !media.ends_with("json") {
            return Ok(());
        }
        let instance: Value = serde_json::from_str(body)
            .map_err(|e| format!("{what}: the body is not JSON ({e}): {body}"))?;
        if spec.get("schema").is_none() {
            return Ok(());
        }
        // Validate with the whole document as the root, so `#/components/...` resolves.
        let pointer = format!(
            "#/paths/{}/{m}/responses/{}/content/{}/schema",
            pointer_token(&tpl),
            key,
            pointer_token(media)
        );
        let pointer = if op["responses"][&key].get("$ref").is_some() {
            // A shared response: its schema lives under components.
            let r = op["responses"][&key]["$ref"].as_str().unwrap();
            format!("{r}/content/{}/schema", pointer_token(media))
        } else {
            pointer
        };
        let mut root = self.doc.clone();
        root["$ref"] = Value::String(pointer.clone());
        root["$schema"] = Value::String("https://json-schema.org/draft/2020-12/schema".into());
        let v = jsonschema::draft202012::new(&root).map_err(|e| {
            format!("docs/openapi.yaml: the schema at {pointer} does not compile: {e}")
        })?;
        let errors: Vec<String> = v
            .iter_errors(&instance)
            .map(|e| format!("  at {}: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{what}: the body does not match docs/openapi.yaml ({pointer}):\n{}\nbody: {body}",
                errors.join("\n")
            ))
        }
    }
}

/// The tests' API client, checking every response against the contract (a mismatch
/// panics, naming the operation and what differs).
pub struct Api {
    pub inner: crate::common::crm::Api,
}

impl Api {
    pub fn new(addr: std::net::SocketAddr) -> Api {
        Api {
            inner: crate::common::crm::Api::new(addr),
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> crate::common::crm::ApiResponse {
        let r = self.inner.request(method, path, token, body, headers);
        let ctype = r.headers.get("content-type").and_then(|v| v.to_str().ok());
        if let Err(e) = contract().check(method, path, r.status, ctype, &r.text) {
            panic!("API contract: {e}");
        }
        r
    }

    pub fn get(&self, path: &str) -> crate::common::crm::ApiResponse {
        self.request("GET", path, Some(crate::common::crm::TOKEN), None, &[])
    }

    pub fn post(&self, path: &str, body: &str) -> crate::common::crm::ApiResponse {
        self.request(
            "POST",
            path,
            Some(crate::common::crm::TOKEN),
            Some(body),
            &[],
        )
    }

    /// Queue an outbound call; returns its id.
    pub fn queue_call(&self, to: &str, key: Option<&str>) -> String {
        let body = match key {
            Some(k) => format!(
                r#"{{"to":"{to}","scenario":"order-confirmation","variables":{{"order_id":"4711"}},"idempotency_key":"{k}"}}"#
            ),
            None => format!(
                r#"{{"to":"{to}","scenario":"order-confirmation","variables":{{"order_id":"4711"}}}}"#
            ),
        };
        let r = self.post("/v1/calls", &body);
        assert!(
            r.status == 201 || r.status == 200,
            "{} {}",
            r.status,
            r.text
        );
        r.json["id"].as_str().unwrap().to_owned()
    }
}
