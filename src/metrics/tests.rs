use super::*;

#[test]
fn the_site_map_is_bounded_and_lets_the_stalest_go() {
    let m = SourceMetrics::new("s", "app");
    let names: Vec<String> = (0..MAX_SITES + 50).map(|i| format!("ari:cloud:jira::site/{i}")).collect();
    m.sites_seen(names.iter().enumerate().map(|(i, n)| (n.as_str(), i as i64)));
    let sites = lock(&m.sites);
    assert_eq!(sites.len(), MAX_SITES);
    assert_eq!(m.sites_evicted.load(Ordering::Relaxed), 50);
    assert!(!sites.contains_key(&names[0]), "the stalest went first");
    assert!(sites.contains_key(&names[MAX_SITES + 49]), "the newest stays");
}
