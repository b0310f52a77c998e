//! Made-up text for the notification and personal-data tests: how customers of a product word
//! one complaint, and a seeded generator of words no dictionary has.

/// Complaints of one product, three wordings each, that the terms-only clustering keeps together.
pub fn wordings(product: &str) -> [&'static str; 3] {
    match product {
        "cards" => [
            "My card payment is declined at checkout",
            "Card payment declined at checkout again",
            "checkout keeps declining my card payment",
        ],
        "transfers" => [
            "My bank transfer is stuck as pending",
            "Bank transfer still pending and stuck",
            "the transfer to my bank is stuck pending",
        ],
        "login" => [
            "I cannot log in, the app rejects my password",
            "App rejects my password so I cannot log in",
            "log in fails, the app rejected my password",
        ],
        "statements" => [
            "My monthly statement will not download",
            "Monthly statement download fails",
            "the download of my monthly statement fails",
        ],
        other => panic!("no wordings for product {other}"),
    }
}

/// splitmix64: a seeded, portable pseudo-random sequence.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A made-up, pronounceable word no dictionary has (capitalised).
    pub fn word(&mut self) -> String {
        const CONSONANTS: &[u8] = b"bdfgklmnprstvz";
        const VOWELS: &[u8] = b"aeiou";
        let mut w = String::new();
        for i in 0..4 {
            let c = CONSONANTS[self.below(CONSONANTS.len() as u64) as usize] as char;
            w.push(if i == 0 { c.to_ascii_uppercase() } else { c });
            w.push(VOWELS[self.below(VOWELS.len() as u64) as usize] as char);
        }
        w.push(['q', 'x', 'z'][self.below(3) as usize]);
        w
    }
}
