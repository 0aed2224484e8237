//! SIP, sans-IO: the wire format (`message`), the user agent core with its transactions and
//! dialogs (`ua`), and SDP offer/answer (`sdp`).

pub mod acl;
pub mod digest;
pub mod message;
pub mod sdp;
pub mod transport;
pub mod ua;
