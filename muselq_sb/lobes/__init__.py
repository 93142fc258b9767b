"""muselq_sb.lobes."""
