//! Generated gRPC code (filled by the transport work).
