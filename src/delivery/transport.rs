//! One HTTP POST to the Trodo API, and nothing else: no retries, no queue.

use std::time::Duration;

use serde_json::Value;

use crate::wire::header;

/// A server's answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The JSON body; a body that is not a JSON object reads as `{}`.
    pub body: Value,
    pub retry_after: Option<String>,
}

/// Largest response body read; Trodo's answers are small.
const MAX_REPLY_BYTES: u64 = 1 << 20;

pub struct Transport {
    agent: ureq::Agent,
    api_base: String,
    site_id: String,
}

impl Transport {
    pub fn new(api_base: &str, site_id: &str, timeout: Duration) -> Transport {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(crate::wire::user_agent())
            .build()
            .into();
        Transport {
            agent,
            api_base: api_base.to_string(),
            site_id: site_id.to_string(),
        }
    }

    /// POSTs `body` (JSON) to `path`. `Err` is a network error or timeout.
    pub fn post(&self, path: &str, body: &[u8]) -> Result<Reply, String> {
        let url = format!("{}{}", self.api_base, path);
        let mut resp = self
            .agent
            .post(&url)
            .header(header::CONTENT_TYPE, header::JSON)
            .header(header::SITE_ID, &self.site_id)
            .send(body)
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_vec()
            .unwrap_or_default();
        let body = match serde_json::from_slice::<Value>(&bytes) {
            Ok(v @ Value::Object(_)) => v,
            _ => Value::Object(Default::default()),
        };
        Ok(Reply {
            status,
            body,
            retry_after,
        })
    }
}
