//! strata-node
