"""muselq_sb.downstream."""
