"""muselq_sb.inference."""
