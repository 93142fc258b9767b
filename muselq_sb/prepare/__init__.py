"""muselq_sb.prepare."""
