//! Subject patterns over topic names, as NATS subjects have them: names are dot-separated
//! tokens; in a pattern `*` matches exactly one token and `>` (last) one or more. Shared by
//! the group coordinator (pattern subscriptions) and the client (ephemeral subscriptions).

/// Whether topic `name` matches subject `pattern`: tokens are separated by `.`; `*` matches
/// exactly one token, and `>` as the last token matches one or more.
pub fn matches(pattern: &str, name: &str) -> bool {
    let mut names = name.split('.');
    let mut tokens = pattern.split('.').peekable();
    while let Some(t) = tokens.next() {
        if t == ">" && tokens.peek().is_none() {
            return names.next().is_some();
        }
        match names.next() {
            Some(n) if t == "*" || t == n => {}
            _ => return false,
        }
    }
    names.next().is_none()
}

/// Why a subject pattern is not valid, if it is not.
pub fn check(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("subject pattern is empty".into());
    }
    let tokens: Vec<&str> = pattern.split('.').collect();
    for (i, t) in tokens.iter().enumerate() {
        if t.is_empty() {
            return Err(format!("subject pattern {pattern:?} has an empty token"));
        }
        if *t == ">" && i + 1 != tokens.len() {
            return Err(format!(
                "subject pattern {pattern:?}: '>' may only be the last token"
            ));
        }
        if t.len() > 1 && (t.contains('*') || t.contains('>')) {
            return Err(format!(
                "subject pattern {pattern:?}: '*' and '>' must be whole tokens"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_as_nats_subjects_do() {
        assert!(matches("orders.*", "orders.eu"));
        assert!(!matches("orders.*", "orders"));
        assert!(!matches("orders.*", "orders.eu.paid"));
        assert!(matches("orders.>", "orders.eu"));
        assert!(matches("orders.>", "orders.eu.paid"));
        assert!(!matches("orders.>", "orders"));
        assert!(matches("*.paid", "orders.paid"));
        assert!(matches("orders", "orders"));
        assert!(!matches("orders", "orders.eu"));
        assert!(matches(">", "a.b"));
    }

    #[test]
    fn bad_patterns_are_named() {
        assert!(check("orders.>").is_ok());
        assert!(check("").is_err());
        assert!(check("orders..x").is_err());
        assert!(check("orders.>.x").is_err());
        assert!(check("orders.a*").is_err());
    }
}
