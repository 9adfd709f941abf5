"""mlipflow."""
