//! Campaigns over the API: their queues and results (`GET /v1/campaigns`), pause and resume,
//! and bulk import of calls from CSV or JSON (`POST /v1/campaigns/{name}/calls`). The
//! campaigns themselves come from the configuration; their pause state and calls live in the
//! store, shared by every node.

use super::*;

/// `GET /v1/campaigns`: every configured campaign (and any other with calls), paused or
/// running, with its queue and results, over all nodes sharing the store.
pub(super) async fn list_campaigns(State(st): State<ApiState>) -> ApiResult {
    let now = unix_ms(SystemTime::now());
    let mut list = st
        .store
        .run(move |s| s.campaign_summaries(now))
        .await
        .ok_or_else(ApiError::unavailable)??;
    for name in st.campaigns.iter() {
        if !list.iter().any(|c| &c.name == name) {
            list.push(crate::store::CampaignSummary {
                name: name.clone(),
                ..Default::default()
            });
        }
    }
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(axum::Json(json!({ "campaigns": list })).into_response())
}

/// `POST /v1/campaigns/{name}/calls`: many calls into one campaign. The body is CSV
/// (`Content-Type: text/csv`; a header row with `to` and a column per variable, plus the
/// optional `not_before`, `timezone`, `consent`, `idempotency_key`; `?scenario=NAME`
/// required) or JSON (`{"scenario": NAME, "calls": [{"to": …, "variables": {…}, …}]}`).
/// Each row is checked like `POST /v1/calls`; valid rows are queued even when others fail.
/// 200 with one result per row (`row` counts from 1 for the first data row; CSV errors name
/// the file line), 400 when the body itself is unreadable.
pub(super) async fn import_calls(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    if !st.campaigns.contains(&name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no campaign {name:?} is configured"),
            Some("name"),
        ));
    }
    if !st.has_trunk {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no SIP trunk is configured, so an outbound call could never be placed",
            None,
        ));
    }
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/csv"));
    let mut query_scenario = None;
    for (k, v) in parse_query(q.as_deref().unwrap_or("")) {
        match k.as_str() {
            "scenario" => query_scenario = Some(v),
            other => {
                return Err(ApiError::invalid(
                    other,
                    format!("unknown parameter {other:?}"),
                ));
            }
        }
    }
    // Each row as a POST /v1/calls body, with its row number.
    let rows: Vec<(usize, Result<Value, ApiError>)> = if csv {
        let scenario = query_scenario
            .ok_or_else(|| ApiError::invalid("scenario", "CSV needs ?scenario=NAME"))?;
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::invalid("body", "the CSV is not UTF-8"))?;
        csv_rows(text, &scenario, &name)?
    } else {
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body is not valid JSON: {e}"),
                None,
            )
        })?;
        let scenario = v
            .get("scenario")
            .cloned()
            .or(query_scenario.map(Value::String));
        let calls = v
            .get("calls")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::invalid("calls", "calls must be an array of calls"))?;
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut c = c.clone();
                if let Value::Object(m) = &mut c {
                    if let Some(s) = &scenario {
                        m.entry("scenario").or_insert(s.clone());
                    }
                    m.insert("campaign".into(), Value::String(name.clone()));
                }
                (i + 1, Ok(c))
            })
            .collect()
    };
    if rows.len() > MAX_IMPORT_ROWS {
        return Err(ApiError::invalid(
            "body",
            format!("at most {MAX_IMPORT_ROWS} calls per request"),
        ));
    }
    let names = st.scenarios.names();
    let now = unix_ms(SystemTime::now());
    let mut results = Vec::with_capacity(rows.len());
    let mut valid = Vec::new();
    for (row, v) in rows {
        let v = match v {
            Ok(v) => v,
            Err(e) => {
                results.push(json!({"row": row, "error": e.error, "field": e.field}));
                continue;
            }
        };
        match parse_call_request(v.to_string().as_bytes(), None, &names, &st.campaigns) {
            Ok(req) => {
                valid.push((row, req));
            }
            Err(e) => results.push(json!({"row": row, "error": e.error, "field": e.field})),
        }
    }
    let created = {
        let batch: Vec<(usize, NewCall, NewEvent)> = valid
            .into_iter()
            .map(|(row, req)| {
                let (call, event) = queued_call(&req, now);
                (row, call, event)
            })
            .collect();
        st.store
            .run(move |s| {
                batch
                    .into_iter()
                    .map(|(row, call, event)| (row, s.create_call(&call, &event, now)))
                    .collect::<Vec<_>>()
            })
            .await
            .ok_or_else(ApiError::unavailable)?
    };
    let mut queued = 0;
    for (row, r) in created {
        results.push(match r {
            Ok(Created::New(c)) => {
                queued += 1;
                st.metrics.event_recorded(events::CALL_QUEUED);
                json!({"row": row, "id": c.id, "status": "queued"})
            }
            Ok(Created::Existing(c)) => json!({"row": row, "id": c.id, "status": "existing"}),
            Ok(Created::Conflict(c)) => json!({"row": row, "error": format!("idempotency_key was already used for a different request (call {})", c.id), "field": "idempotency_key"}),
            Err(e) => json!({"row": row, "error": e.to_string(), "field": null}),
        });
    }
    results.sort_by_key(|r| r["row"].as_u64().unwrap_or(0));
    if queued > 0 {
        st.store.new_events.notify_one();
        st.claim_now.notify_one();
    }
    tracing::info!(campaign = %name, queued, rows = results.len(), "calls imported");
    let failed = results.iter().filter(|r| r.get("error").is_some()).count();
    Ok(
        axum::Json(json!({"campaign": name, "queued": queued, "failed": failed, "rows": results}))
            .into_response(),
    )
}

/// At most this many calls in one import.
const MAX_IMPORT_ROWS: usize = 10_000;

/// CSV (RFC 4180: quoted fields, `""` inside quotes, CRLF or LF) → one call body per data
/// row. Columns: `to`, the optional `not_before`, `timezone`, `consent`, `idempotency_key`,
/// and every other column a variable. Row numbers count data rows from 1.
type Rows = Vec<(usize, Result<Value, ApiError>)>;

fn csv_rows(text: &str, scenario: &str, campaign: &str) -> Result<Rows, ApiError> {
    let records = parse_csv(text).map_err(|e| ApiError::invalid("body", e))?;
    let mut it = records.into_iter();
    let header: Vec<String> = it
        .next()
        .ok_or_else(|| {
            ApiError::invalid("body", "the CSV is empty: a header row with `to` is needed")
        })?
        .into_iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if !header.iter().any(|h| h == "to") {
        return Err(ApiError::invalid(
            "body",
            "the CSV header has no `to` column",
        ));
    }
    let mut out = Vec::new();
    for (i, rec) in it.enumerate() {
        if rec.len() == 1 && rec[0].trim().is_empty() {
            continue;
        }
        let mut call = serde_json::Map::new();
        let mut vars = serde_json::Map::new();
        call.insert("scenario".into(), Value::String(scenario.to_owned()));
        call.insert("campaign".into(), Value::String(campaign.to_owned()));
        for (col, value) in header.iter().zip(rec.iter()) {
            match col.as_str() {
                "to" | "not_before" | "timezone" | "idempotency_key" => {
                    if !value.is_empty() {
                        call.insert(col.clone(), Value::String(value.clone()));
                    }
                }
                "consent" => {
                    let v = match value.trim().to_ascii_lowercase().as_str() {
                        "" => continue,
                        "true" | "yes" | "1" => Value::Bool(true),
                        "false" | "no" | "0" => Value::Bool(false),
                        // Refused by the row's check, naming the field.
                        _ => Value::String(value.clone()),
                    };
                    call.insert(col.clone(), v);
                }
                _ => {
                    vars.insert(col.clone(), Value::String(value.clone()));
                }
            }
        }
        if rec.len() != header.len() {
            out.push((
                i + 1,
                Err(ApiError::invalid(
                    "body",
                    format!("{} fields where the header has {}", rec.len(), header.len()),
                )),
            ));
            continue;
        }
        call.insert("variables".into(), Value::Object(vars));
        out.push((i + 1, Ok(Value::Object(call))));
    }
    Ok(out)
}

/// Records of a CSV text; a record is its fields.
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut rec = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut line = 1;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => rec.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                rec.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut rec));
                line += 1;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(format!("line {line}: a quoted field is not closed"));
    }
    if !field.is_empty() || !rec.is_empty() {
        rec.push(field);
        records.push(rec);
    }
    Ok(records)
}

/// `POST /v1/campaigns/{name}/pause`: no node claims the campaign's calls until resumed
/// (calls already ringing or up go on).
pub(super) async fn pause_campaign(
    State(st): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult {
    set_paused(st, name, true).await
}

/// `POST /v1/campaigns/{name}/resume`.
pub(super) async fn resume_campaign(
    State(st): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult {
    set_paused(st, name, false).await
}

async fn set_paused(st: ApiState, name: String, paused: bool) -> ApiResult {
    if !st.campaigns.contains(&name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no campaign {name:?} is configured"),
            Some("name"),
        ));
    }
    let now = unix_ms(SystemTime::now());
    let n = name.clone();
    st.store
        .run(move |s| s.set_campaign_paused(&n, paused, now))
        .await
        .ok_or_else(ApiError::unavailable)??;
    tracing::info!(campaign = %name, paused, "campaign {}", if paused { "paused" } else { "resumed" });
    if !paused {
        st.claim_now.notify_one();
    }
    Ok(axum::Json(json!({ "name": name, "paused": paused })).into_response())
}
