//! The peer transport: one server per node and shared channels per peer, for every group.
