//! Random run names in MLflow's style (`adjective-noun-123`) for runs created without one.

const ADJECTIVES: &[&str] = &[
    "able", "amber", "bold", "brave", "bright", "calm", "clever", "crisp", "daring", "eager", "fair", "gentle", "glad",
    "grand", "honest", "keen", "kind", "lucid", "merry", "nimble", "polite", "proud", "quick", "quiet", "rare",
    "sharp", "silent", "steady", "swift", "tidy", "vivid", "wise",
];
const NOUNS: &[&str] = &[
    "badger", "bear", "crane", "deer", "dove", "eagle", "falcon", "finch", "fox", "hare", "hawk", "heron", "lark",
    "lynx", "mole", "moth", "newt", "otter", "owl", "panda", "raven", "robin", "seal", "shrew", "slug", "snail",
    "stork", "swan", "toad", "trout", "whale", "wolf",
];

pub(super) fn random_run_name() -> String {
    let bits = uuid::Uuid::new_v4().as_u128();
    let adjective = ADJECTIVES[(bits % ADJECTIVES.len() as u128) as usize];
    let noun = NOUNS[((bits >> 16) % NOUNS.len() as u128) as usize];
    let number = (bits >> 32) % 1000;
    format!("{adjective}-{noun}-{number}")
}
