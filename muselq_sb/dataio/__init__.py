"""muselq_sb.dataio."""
