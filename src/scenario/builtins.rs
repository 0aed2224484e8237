//! The call's parties as variables: who called whom, and which of the two is the customer.
//!
//! Every call, inbound or outbound, has the same four built-in variables, declared
//! implicitly in every scenario (like `language`), filled by the runtime when the call
//! starts, and read-only for the scenario:
//!
//! | variable | inbound call (a customer calls us) | outbound call (we call a customer) |
//! | --- | --- | --- |
//! | `caller` | the customer's number (From user) | our own number (the trunk's caller ID) |
//! | `dialled` | the number the customer dialled (the DID, Request-URI user) | the customer's number (the request's `to`) |
//! | `customer` | = `caller` | = `dialled` |
//! | `direction` | `inbound` | `outbound` |
//! | `customer_verified` | `true` only when a trusted proxy asserted the number (`P-Asserted-Identity`) | `true` (we dialled it) |
//!
//! A From header is whatever the caller typed: on an inbound call `customer` is only known
//! to be the customer's when `customer_verified` is `true`. Actions that trust the number
//! (an opt-out, a text to the caller, changing an order) should branch on it.
//!
//! `caller` and `dialled` keep meaning what their names say in both directions; a scenario
//! that texts, calls back or opts out *the customer* uses `customer`, which is right both
//! ways (`caller` on an outbound call is the robot itself).
//!
//! Deliberately not here: reading SIP or the API (the engine passes the two numbers), and
//! any number normalisation (values are passed through as the call has them).

use std::collections::BTreeMap;

/// The number that placed the call.
pub const CALLER: &str = "caller";
/// The number that was dialled.
pub const DIALLED: &str = "dialled";
/// The other party: the caller on inbound calls, the callee on outbound calls.
pub const CUSTOMER: &str = "customer";
/// `inbound` or `outbound`.
pub const DIRECTION: &str = "direction";
/// `true` when the customer's number is known to be theirs, else `false`.
pub const CUSTOMER_VERIFIED: &str = "customer_verified";

/// The built-in variables with their one-line meaning (for the docs, the implicit
/// declarations and the linter's hints).
pub const BUILTINS: [(&str, &str); 5] = [
    (
        CALLER,
        "the number that placed the call: the customer's inbound, ours outbound (built-in)",
    ),
    (
        DIALLED,
        "the number dialled: our DID inbound, the customer's outbound (built-in)",
    ),
    (
        CUSTOMER,
        "the other party's number: the caller inbound, the callee outbound (built-in)",
    ),
    (DIRECTION, "`inbound` or `outbound` (built-in)"),
    (
        CUSTOMER_VERIFIED,
        "`true` when the customer's number was asserted by a trusted proxy or dialled by us (built-in)",
    ),
];

/// Whether `name` is one of the built-in, runtime-set variables.
pub fn is_builtin(name: &str) -> bool {
    BUILTINS.iter().any(|(n, _)| *n == name)
}

/// Which way a call goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallDirection {
    /// The customer called us.
    Inbound,
    /// We called the customer.
    Outbound,
}

impl CallDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::Inbound => "inbound",
            CallDirection::Outbound => "outbound",
        }
    }

    pub fn parse(text: &str) -> Option<CallDirection> {
        match text {
            "inbound" => Some(CallDirection::Inbound),
            "outbound" => Some(CallDirection::Outbound),
            _ => None,
        }
    }
}

/// The values of the built-ins for a call from `caller` to `dialled` (SIP From user, or the
/// asserted identity, and Request-URI / `to` user, as the call has them). `asserted`: an
/// inbound caller's number came from a trusted proxy's `P-Asserted-Identity` (outbound
/// calls are always verified: the robot dialled the number).
pub fn party_variables(
    direction: CallDirection,
    caller: &str,
    dialled: &str,
    asserted: bool,
) -> BTreeMap<String, String> {
    let customer = match direction {
        CallDirection::Inbound => caller,
        CallDirection::Outbound => dialled,
    };
    BTreeMap::from([
        (CALLER.to_string(), caller.to_string()),
        (DIALLED.to_string(), dialled.to_string()),
        (CUSTOMER.to_string(), customer.to_string()),
        (DIRECTION.to_string(), direction.as_str().to_string()),
        (
            CUSTOMER_VERIFIED.to_string(),
            (asserted || direction == CallDirection::Outbound).to_string(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_customer_is_the_other_party_in_both_directions() {
        let inbound = party_variables(CallDirection::Inbound, "+15551230000", "100", false);
        assert_eq!(inbound[CUSTOMER_VERIFIED], "false");
        let asserted = party_variables(CallDirection::Inbound, "+15551230000", "100", true);
        assert_eq!(asserted[CUSTOMER_VERIFIED], "true");
        assert_eq!(inbound[CALLER], "+15551230000");
        assert_eq!(inbound[DIALLED], "100");
        assert_eq!(inbound[CUSTOMER], "+15551230000");
        assert_eq!(inbound[DIRECTION], "inbound");
        let outbound = party_variables(CallDirection::Outbound, "shop", "+15551230000", false);
        assert_eq!(outbound[CUSTOMER_VERIFIED], "true");
        assert_eq!(outbound[CALLER], "shop");
        assert_eq!(outbound[DIALLED], "+15551230000");
        assert_eq!(outbound[CUSTOMER], "+15551230000");
        assert_eq!(outbound[DIRECTION], "outbound");
        assert!(BUILTINS.iter().all(|(n, _)| is_builtin(n)));
        assert!(!is_builtin("language"));
        assert_eq!(
            CallDirection::parse("outbound"),
            Some(CallDirection::Outbound)
        );
        assert_eq!(CallDirection::parse("sideways"), None);
    }
}
