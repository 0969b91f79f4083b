//! Command parsing and replies.
//!
//! Replies use HTML parse mode everywhere; every piece of user or market text is
//! escaped with [`escape_html`].

/// Longest message text the bot looks at; longer input gets a short reply.
pub const MAX_INPUT: usize = 512;

/// A command found at the start of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    /// Lower-cased name without the slash, e.g. `help`.
    pub name: String,
    /// The rest of the message, split on whitespace.
    pub args: Vec<&'a str>,
}

/// How a message relates to the bot's commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A command for us (unaddressed, or `/cmd@our_bot`).
    Command(Command<'a>),
    /// `/cmd@other_bot`: not ours, stay silent.
    ForOtherBot,
    /// Not a command at all.
    NotCommand,
}

/// Parses `text` sent to the bot `@bot_username`.
pub fn parse<'a>(text: &'a str, bot_username: &str) -> Parsed<'a> {
    let text = text.trim_start();
    let Some(rest) = text.strip_prefix('/') else {
        return Parsed::NotCommand;
    };
    let mut words = rest.split_whitespace();
    let Some(head) = words.next() else {
        return Parsed::NotCommand;
    };
    let (name, addressee) = match head.split_once('@') {
        Some((n, a)) => (n, Some(a)),
        None => (head, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Parsed::NotCommand;
    }
    if let Some(a) = addressee {
        if !a.eq_ignore_ascii_case(bot_username) {
            return Parsed::ForOtherBot;
        }
    }
    Parsed::Command(Command {
        name: name.to_ascii_lowercase(),
        args: words.collect(),
    })
}

/// Escapes text for Telegram's HTML parse mode.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The commands the bot registers with `setMyCommands`, with their descriptions.
pub const COMMANDS: &[(&str, &str)] = &[
    ("start", "Welcome and what this bot does"),
    ("help", "List of commands"),
    ("liq", "24 h liquidations of a coin: /liq BTC"),
    ("funding", "Funding rates of a coin: /funding ETH"),
    (
        "whale",
        "Latest large Hyperliquid positions: /whale [SYMBOL]",
    ),
    (
        "subscribe",
        "Get alerts: /subscribe [SYMBOL] [liquidations|whales|funding|all]",
    ),
    (
        "unsubscribe",
        "Stop alerts: /unsubscribe SYMBOL [KIND] or /unsubscribe all",
    ),
    ("alerts", "This chat's alert subscriptions"),
    ("status", "Bot and data source health"),
];

/// Whether `name` is one of [`COMMANDS`].
pub fn is_known(name: &str) -> bool {
    COMMANDS.iter().any(|(n, _)| *n == name)
}

/// The reply to `/start`.
pub fn start_text(first_name: Option<&str>) -> String {
    let greeting = match first_name {
        Some(n) if !n.trim().is_empty() => format!("Hi {}!", escape_html(n.trim())),
        _ => "Hi!".to_owned(),
    };
    format!(
        "{greeting} I am <b>CryptoSat</b>: I watch crypto futures markets \
         (large liquidations, Hyperliquid whale positions, extreme funding rates) \
         and alert the chats that subscribe.\n\nTry the buttons below, /subscribe to get alerts, \
         or /help for all commands."
    )
}

/// The reply to `/help`.
pub fn help_text() -> String {
    let mut text = String::from("<b>CryptoSat commands</b>\n");
    for (name, desc) in COMMANDS {
        text.push_str(&format!("/{name} — {}\n", escape_html(desc)));
    }
    text
}

/// The reply to a command this bot does not know (private chats only).
pub fn unknown_text(name: &str) -> String {
    format!(
        "I don't know /{}. Send /help for the list of commands.",
        escape_html(name)
    )
}

/// The reply to plain text in a private chat.
pub fn not_command_text() -> String {
    "I answer commands only. Send /help for the list.".to_owned()
}

/// The one reply a user not on the allowlist gets.
pub fn denied_text() -> String {
    "Sorry, this bot is private: your account is not on its list of users. Ask the bot's operator if you should have access.".to_owned()
}

/// The reply when a user sends commands too fast.
pub fn slow_down_text(wait_secs: u64) -> String {
    format!("You are sending commands too fast. Please wait {wait_secs} s.")
}

/// The reply to input longer than [`MAX_INPUT`].
pub fn too_long_text() -> String {
    format!("That message is too long for me (over {MAX_INPUT} characters). Send /help for the list of commands.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_and_addressees() {
        let Parsed::Command(c) = parse("/Help@CryptoSatBot  now", "cryptosatbot") else {
            panic!()
        };
        assert_eq!(c.name, "help");
        assert_eq!(c.args, vec!["now"]);
        assert_eq!(parse("/help@OtherBot", "cryptosatbot"), Parsed::ForOtherBot);
        assert_eq!(parse("hello /help", "b"), Parsed::NotCommand);
        assert_eq!(parse("/", "b"), Parsed::NotCommand);
        assert_eq!(parse("/<script>", "b"), Parsed::NotCommand);
    }

    #[test]
    fn escapes_user_text() {
        assert_eq!(escape_html("<b>&\"x\""), "&lt;b&gt;&amp;&quot;x&quot;");
        assert!(start_text(Some("<Eve>")).contains("Hi &lt;Eve&gt;!"));
        assert!(unknown_text("x<y").contains("/x&lt;y"));
    }
}
