"""Input moderation for models marked `moderated: true` (DESIGN §7)."""
