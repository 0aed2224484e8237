//! SIP, sans-IO: the wire format (`message`), the user agent core with its transactions and
//! dialogs (`ua`), SDP offer/answer (`sdp`), transports and stream framing (`transport`),
//! and locating a trunk's servers in DNS (`dns`, RFC 3263).

pub mod acl;
pub mod digest;
pub mod dns;
pub mod message;
pub mod sdp;
pub mod transport;
pub mod ua;
