//! The seed's SaaS login flow, end to end, against an in-process loopback
//! capture server (no Trodo account needed). Prints what the server received.
//!
//!     cargo run --example login_flow
//!
//! Set TRODO_API_BASE to send to a real endpoint instead.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::json;
use trodo::{Client, Group, GroupProfileOp, Options, PeopleOp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let capture = support::FakeTrodo::start();
    // The user already belongs to two teams, joined on another device.
    capture.seed_memberships("user-123", "team", &["team-a", "team-b"]);
    capture.seed_memberships("user-123", "company", &["acme"]);

    let api_base = std::env::var("TRODO_API_BASE").unwrap_or_else(|_| capture.url().to_string());
    let storage = std::env::temp_dir().join(format!("trodo-demo-{}", trodo::util::new_id()));
    let options = Options {
        api_base,
        storage_dir: Some(storage.clone()),
        app_version: Some("1.0.0".into()),
        ..Options::default()
    };
    let trodo = Client::start("demo-site", options)?;

    // 1. Anonymous visit.
    trodo.track("app_opened", None, None)?;

    // 2. Login: identify hydrates the memberships the server knows.
    trodo.identify("user-123")?;
    trodo.flush(Duration::from_secs(10))?;
    println!("after identify, groups = {}", trodo.groups()?.to_json());

    // 3. The recommended multi-team pattern: `team` for permanent memberships,
    //    `active_team` for the workspace in use (drives attribution).
    trodo.add_group("team", "team-a")?;
    trodo.set_group("active_team", "team-a")?;
    trodo.track("dashboard_viewed", obj(json!({"widgets": 4})), None)?;

    // 4. Group profile: properties on the company itself (no effect on attribution).
    let acme = Group::new("company", "acme")?;
    trodo.group_profile(
        &acme,
        GroupProfileOp::Set(obj(json!({"plan": "enterprise", "seats": 40})).unwrap()),
    )?;
    trodo.group_profile(
        &acme,
        GroupProfileOp::Increment {
            property: "logins".into(),
            value: 1.0,
        },
    )?;

    // 5. The user switches workspace: only later events carry team-b.
    trodo.set_group("active_team", "team-b")?;
    trodo.track(
        "report_created",
        obj(json!({"format": "pdf"})),
        Some("reports"),
    )?;

    // 6. People profile for the user.
    trodo.people(PeopleOp::Set(
        obj(json!({"name": "Ada", "role": "admin"})).unwrap(),
    ))?;

    // 7. Logout: the next person on this device inherits nothing.
    trodo.reset()?;
    println!("after reset, groups = {}", trodo.groups()?.to_json());

    trodo.shutdown(Duration::from_secs(10))?;
    let _ = std::fs::remove_dir_all(&storage);

    println!(
        "\nThe capture server received {} requests:",
        capture.requests().len()
    );
    for r in capture.requests() {
        println!(
            "\nPOST {}\n{}",
            r.path,
            serde_json::to_string_pretty(&r.body)?
        );
    }
    Ok(())
}

fn obj(v: serde_json::Value) -> Option<serde_json::Map<String, serde_json::Value>> {
    v.as_object().cloned()
}
