"""berth.logs"""
