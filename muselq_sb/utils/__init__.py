"""muselq_sb.utils."""
