use super::*;

#[test]
fn names_are_unique_and_counters_end_in_total() {
    let mut seen = std::collections::HashSet::new();
    for f in FAMILIES {
        assert!(seen.insert(f.name), "{} listed twice", f.name);
        assert!(seen.insert(f.otlp_name()) || f.otlp_name() == f.name, "{} collides", f.otlp_name());
        match f.kind {
            Kind::Counter(_) => assert!(f.name.ends_with("_total"), "{}", f.name),
            _ => assert!(!f.name.ends_with("_total"), "{}", f.name),
        }
        assert!(f.help.ends_with('.'), "{}", f.name);
    }
}
