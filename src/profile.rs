//! Profile operations: the eight group-profile calls of `get_group(...)` and the
//! people calls on the current user. Arguments are checked here, once, for
//! every caller; `wire` turns a checked operation into a request body.

use serde_json::{Map, Value};

use crate::error::Result;
use crate::validate;

/// One operation on a group's profile, `(group_key, group_id)` held by the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupProfileOp {
    Set(Map<String, Value>),
    SetOnce(Map<String, Value>),
    Union {
        list_name: String,
        values: Vec<Value>,
    },
    Remove {
        list_name: String,
        value: Value,
    },
    Append {
        property: String,
        value: Value,
    },
    Increment {
        property: String,
        value: f64,
    },
    Unset {
        property: String,
    },
    Delete,
}

impl GroupProfileOp {
    /// Checks names and numbers; JSON shapes are already guaranteed by the types.
    pub fn validate(&self) -> Result<()> {
        match self {
            GroupProfileOp::Set(_) | GroupProfileOp::SetOnce(_) | GroupProfileOp::Delete => {}
            GroupProfileOp::Union { list_name, .. } | GroupProfileOp::Remove { list_name, .. } => {
                validate::name(list_name, "list_name")?;
            }
            GroupProfileOp::Append { property, .. } | GroupProfileOp::Unset { property } => {
                validate::name(property, "property")?;
            }
            GroupProfileOp::Increment { property, value } => {
                validate::name(property, "property")?;
                validate::finite(*value, "value")?;
            }
        }
        Ok(())
    }
}

/// One operation on the current user's people profile.
#[derive(Debug, Clone, PartialEq)]
pub enum PeopleOp {
    Set(Map<String, Value>),
    SetOnce(Map<String, Value>),
    Unset {
        key: String,
    },
    Increment {
        key: String,
        amount: f64,
    },
    Append {
        key: String,
        values: Vec<Value>,
    },
    Union {
        key: String,
        values: Vec<Value>,
    },
    Remove {
        key: String,
        values: Vec<Value>,
    },
    TrackCharge {
        amount: f64,
        properties: Map<String, Value>,
    },
    ClearCharges,
    DeleteUser,
}

impl PeopleOp {
    pub fn validate(&self) -> Result<()> {
        match self {
            PeopleOp::Set(_)
            | PeopleOp::SetOnce(_)
            | PeopleOp::ClearCharges
            | PeopleOp::DeleteUser => {}
            PeopleOp::Unset { key }
            | PeopleOp::Append { key, .. }
            | PeopleOp::Union { key, .. }
            | PeopleOp::Remove { key, .. } => {
                validate::name(key, "key")?;
            }
            PeopleOp::Increment { key, amount } => {
                validate::name(key, "key")?;
                validate::finite(*amount, "amount")?;
            }
            PeopleOp::TrackCharge { amount, .. } => {
                validate::finite(*amount, "amount")?;
            }
        }
        Ok(())
    }
}
