from services.salesforce_sink.main import main

main()
