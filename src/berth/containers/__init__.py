"""berth.containers"""
