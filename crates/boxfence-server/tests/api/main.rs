//! The HTTP API against a real server on an ephemeral loopback port with
//! a real SQLite file. Machines live in a small in-memory engine
//! (`support::RecordingEngine`); the real data plane is tested end to end
//! in its own crate's lab tests.

mod auth;
mod boxes;
mod conformance;
mod errors;
mod guest;
mod health;
mod host;
mod images;
mod limits;
mod machines;
mod metrics;
mod openapi;
mod persistence;
mod policies;
mod sdk;
mod support;
mod unix_socket;
mod validation;
